"""uibrec: recommenders from implicit feedback with a learned per-user interest boundary.

The public API::

    import uibrec
    data = uibrec.load_dataset("ml-1m", data_dir="../shared/data")
    data = uibrec.prepare(data, min_user=5)
    split = uibrec.leave_one_out(data, seed=0)
    candidates = uibrec.sample_candidates(split, n=100, seed=0)
    metrics = uibrec.train(dataset="ml-1m", model="mf", loss="uib", alpha=8)
"""

import os

# Training steps are many small tensor operations. With OpenMP's default (active) waiting,
# idle threads spin between them and, on a machine with other busy processes, one epoch
# measured 6x slower. Passive waiting costs nothing measurable on an idle machine. It only
# takes effect if uibrec is imported before torch; set it yourself otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from uibrec.config import Config, make_config
from uibrec.data.candidates import load_or_sample_candidates, sample_candidates
from uibrec.data.interactions import IdMap, Interactions
from uibrec.data.readers import DataFormatError, read_delimited, read_movielens_dat
from uibrec.data.registry import DATASETS, DatasetNotFoundError, load_dataset
from uibrec.data.split import Split, leave_one_out, prepare
from uibrec.evaluation import Evaluator, metrics_from_ranks, rank_metrics
from uibrec.recommend import recommend, wants
from uibrec.runs import evaluate_run, load_run, train

__version__ = "0.1.0"

__all__ = [
    "DATASETS",
    "Config",
    "DataFormatError",
    "DatasetNotFoundError",
    "Evaluator",
    "IdMap",
    "Interactions",
    "Split",
    "evaluate_run",
    "leave_one_out",
    "load_dataset",
    "load_or_sample_candidates",
    "load_run",
    "make_config",
    "metrics_from_ranks",
    "prepare",
    "rank_metrics",
    "read_delimited",
    "read_movielens_dat",
    "recommend",
    "sample_candidates",
    "train",
    "wants",
]
