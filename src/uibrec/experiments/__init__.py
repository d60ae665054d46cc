"""Experiments: the paper's settings and grids, search, repeats, the report, reproduction.

Optuna is needed for the search only (``pip install uibrec[search]``).
"""

from uibrec.experiments.reproduce import ReproduceResult, reproduce
from uibrec.experiments.search import SearchResult, search
from uibrec.experiments.spec import Experiment, ExperimentFileError, load_experiments

__all__ = ["Experiment", "ExperimentFileError", "ReproduceResult", "SearchResult",
           "load_experiments", "reproduce", "search"]
