"""Dataset statistics after the paper's filter and split (the paper's Table 3)."""

from __future__ import annotations

import logging

from uibrec.data.registry import DATASETS, load_dataset, locate
from uibrec.data.split import leave_one_out, prepare

logger = logging.getLogger(__name__)


def dataset_stats(name_or_path, data_dir=None, min_user: int = 5, seed: int = 0,
                  order: str = "random", download_missing: bool = True,
                  **read_options) -> dict:
    """Users, items, train, validation and test sizes and density of a dataset after
    :func:`~uibrec.data.split.prepare` and :func:`~uibrec.data.split.leave_one_out`, with
    the rows read and what each step removed.

    Returns:
        ``{"dataset", "file", "raw rows", "users", "items", "train", "valid", "test",
        "density", "removed": {step: count}}``; density counts train, validation and test
        interactions over users x items.
    """
    name = str(name_or_path)
    found = locate(name, data_dir) if name in DATASETS else None
    data = load_dataset(name_or_path, data_dir, download_missing=download_missing,
                        **read_options)
    if found is None and name in DATASETS:
        found = locate(name, data_dir)  # downloaded just now
    report: dict = {}
    data = prepare(data, min_user=min_user, report=report)
    split = leave_one_out(data, seed=seed, order=order)
    raw_rows = report.pop("raw rows")
    return {"dataset": name, "file": str(found[0]) if found else name, "raw rows": raw_rows,
            **split.stats(), "removed": report}
