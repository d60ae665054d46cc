import math

import numpy as np
import pytest

from uibrec.experiments.stats import (
    paired_bootstrap,
    paired_t_test,
    per_user_metric,
    t_two_sided_p,
)


def test_t_distribution_closed_forms():
    # df = 1 (Cauchy): P(|T| >= 1) = 1 - 2/pi * atan(1) = 0.5.
    assert t_two_sided_p(1.0, 1) == pytest.approx(0.5)
    # df = 2: P(|T| >= t) = 1 - t / sqrt(2 + t^2); t = sqrt(2) gives 1 - 1/sqrt(2).
    assert t_two_sided_p(math.sqrt(2), 2) == pytest.approx(1 - 1 / math.sqrt(2))
    # df = 4, t = 2.776445 is the two-sided 5% critical value of the t tables.
    assert t_two_sided_p(2.776445, 4) == pytest.approx(0.05, abs=1e-6)
    # df = 3, t = 3.182446: the 5% critical value (odd df series).
    assert t_two_sided_p(3.182446, 3) == pytest.approx(0.05, abs=1e-6)
    assert t_two_sided_p(0.0, 5) == pytest.approx(1.0)
    assert t_two_sided_p(-2.776445, 4) == pytest.approx(0.05, abs=1e-6)


def test_t_distribution_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 2, 3, 4, 7, 10):
        for t in (0.3, 1.5, 4.0):
            assert t_two_sided_p(t, df) == pytest.approx(2 * stats.t.sf(t, df), abs=1e-12)


def test_paired_t_test_by_hand():
    # Differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3) = 2 sqrt 3 on 2 df,
    # p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12 / 14).
    p = paired_t_test([0.0, 0.0, 0.0], [1.0, 2.0, 3.0])
    assert p == pytest.approx(1 - math.sqrt(12 / 14))
    assert paired_t_test([1.0, 2.0], [2.0, 3.0]) == 0.0  # constant nonzero difference
    assert paired_t_test([1.0, 2.0], [1.0, 2.0]) == 1.0
    assert math.isnan(paired_t_test([1.0], [2.0]))


def test_per_user_metric_by_hand():
    ranks = np.array([0, 1, 9, 10])
    assert per_user_metric(ranks, "hit@1").tolist() == [1, 0, 0, 0]
    assert per_user_metric(ranks, "hit@10").tolist() == [1, 1, 1, 0]
    assert per_user_metric(ranks, "mrr@10") == pytest.approx([1, 1 / 2, 1 / 10, 0])
    assert per_user_metric(ranks, "ndcg@10") == pytest.approx(
        [1, 1 / math.log2(3), 1 / math.log2(11), 0])
    with pytest.raises(ValueError, match="hit@10"):
        per_user_metric(ranks, "recall@10")


def test_paired_bootstrap():
    a = np.zeros(200)
    # Every user better by 1: no resample has a mean <= 0, p = 2 * 1 / 1001.
    assert paired_bootstrap(a, a + 1, n_boot=1000) == pytest.approx(2 / 1001)
    # No difference at all: every resample sits at 0 on both sides, p = 1.
    assert paired_bootstrap(a, a, n_boot=100) == 1.0
    # Symmetric noise around 0: far from significant, and reproducible by seed.
    noise = np.random.default_rng(1).choice([-1.0, 1.0], size=200)
    p = paired_bootstrap(a, noise, n_boot=500, seed=3)
    assert p > 0.05 and p == paired_bootstrap(a, noise, n_boot=500, seed=3)
