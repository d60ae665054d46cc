"""build_components passes each model and loss only the options it takes."""

from __future__ import annotations

from uibrec.losses import LOSSES
from uibrec.training import _accepted


def test_losses_without_options_are_given_none():
    # Regression: nn.Module.__init__(*args, **kwargs) made BPR look as if it took every
    # option, and building MF + BPR failed with "unexpected keyword argument 'num_users'".
    options = {"num_users": 3, "num_items": 4, "dim": 8, "alpha": 2.0}
    assert _accepted(LOSSES["bpr"], options) == {}
    assert _accepted(LOSSES["bce"], options) == {}
    assert _accepted(LOSSES["uib"], options) == {"alpha": 2.0}
    LOSSES["bpr"](**_accepted(LOSSES["bpr"], options))


def test_sml_losses_take_the_sizes():
    options = {"num_users": 3, "num_items": 4, "dim": 8, "alpha": 2.0, "lam": 0.5}
    assert _accepted(LOSSES["sml"], options) == {"num_users": 3, "num_items": 4, "lam": 0.5}
    assert _accepted(LOSSES["sml_uib"], options)["alpha"] == 2.0
