"""build_components passes each model and loss only the options it takes."""

from __future__ import annotations

import pytest

from uibrec.losses import LOSSES
from uibrec.training import _accepted

CONTEXT = {"num_users": 3, "num_items": 4, "dim": 8, "alpha": 2.0}


def test_losses_without_options_are_given_none():
    # Regression: nn.Module.__init__(*args, **kwargs) made BPR look as if it took every
    # option, and building MF + BPR failed with "unexpected keyword argument 'num_users'".
    assert _accepted(LOSSES["bpr"], CONTEXT, {}, "bpr") == {}
    assert _accepted(LOSSES["bce"], CONTEXT, {}, "bce") == {}
    assert _accepted(LOSSES["uib"], CONTEXT, {}, "uib") == {"alpha": 2.0}
    LOSSES["bpr"](**_accepted(LOSSES["bpr"], CONTEXT, {}, "bpr"))


def test_sml_losses_take_the_sizes_and_their_options():
    taken = _accepted(LOSSES["sml"], CONTEXT, {"lam": 0.5}, "sml")
    assert taken == {"num_users": 3, "num_items": 4, "lam": 0.5}
    assert _accepted(LOSSES["sml_uib"], CONTEXT, {}, "sml_uib")["alpha"] == 2.0


def test_an_option_a_loss_does_not_take_is_refused():
    with pytest.raises(ValueError, match="bpr takes no option 'lam'; it takes: no options"):
        _accepted(LOSSES["bpr"], CONTEXT, {"lam": 0.5}, "bpr")
