"""Every figure function writes a PNG from small inputs."""

import numpy as np
import pandas as pd

from uibrec import plots


def _sweep():
    rows = [{"scope": s, "offset": o, "precision": 0.5, "recall": 0.4, "f1": 0.44}
            for s in ("known", "test") for o in range(-2, 3)]
    return pd.DataFrame(rows)


def test_every_figure_is_written(tmp_path):
    rng = np.random.default_rng(0)
    per_user = pd.DataFrame({"filtered_share": rng.random(20),
                             "test_margin": rng.normal(size=20)})
    history = pd.DataFrame({"epoch": [1, 2, 3], "corrupted": [0.3, 0.2, 0.1]})
    with_pairs = history.assign(corrupted_pairs=[0.5, 0.4, 0.4])
    table = pd.DataFrame({"alpha": [0.1, 1.0], "hit@1": [0.2, 0.3], "ndcg@10": [0.4, 0.5]})
    stats = pd.DataFrame([{"alpha": a, "kind": k, "q05": 0, "q25": 1, "q50": 2, "q75": 3,
                           "q95": 4} for a in (0.1, 1.0) for k in ("boundary", "negative")])
    written = [
        plots.boundary_histogram(rng.normal(size=30), tmp_path / "a.png"),
        plots.boundary_grid({"x": rng.normal(size=9), "y": rng.normal(size=9)},
                            tmp_path / "b.png"),
        plots.offset_sweep(_sweep(), tmp_path / "c.png", "t"),
        plots.f1_by_offset({"x": _sweep()}, tmp_path / "d.png"),
        plots.filtered_share(per_user, tmp_path / "e.png"),
        plots.score_histograms({"negative": rng.normal(size=50)}, tmp_path / "f.png"),
        plots.corrupted_rate({"bpr": history, "uib": with_pairs}, tmp_path / "g.png"),
        plots.alpha_metrics(table, tmp_path / "sub" / "h.png"),
        plots.alpha_distributions(stats, tmp_path / "i.png"),
    ]
    for path in written:
        assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG"
