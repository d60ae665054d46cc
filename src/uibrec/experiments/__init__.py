"""Experiments: the paper's settings and grids, search, repeats, the report, reproduction.

- :mod:`~uibrec.experiments.spec`: experiment files (``experiments/<dataset>.yaml``);
- :mod:`~uibrec.experiments.search`: Optuna search of a configuration's grid;
- :mod:`~uibrec.experiments.repeats`: seeded repeats, the run ledger, paired comparisons;
- :mod:`~uibrec.experiments.stats`: the paired t-test and the per-user bootstrap;
- :mod:`~uibrec.experiments.report`: ``runs.csv``, ``summary.csv`` and ``report.md``;
- :mod:`~uibrec.experiments.reproduce`: all of it for chosen datasets and models.

Optuna is needed for the search only (``pip install uibrec[search]``).
"""
