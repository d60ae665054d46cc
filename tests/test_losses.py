import math

import pytest
import torch

from uibrec.losses import BCELoss, BPRLoss, LossInput, UIBLoss


def softplus(x):
    return math.log1p(math.exp(x))


def test_bpr_is_mean_softplus_of_score_differences():
    batch = LossInput(torch.tensor([1.0, 0.0]), torch.tensor([[0.0, 2.0], [1.0, -1.0]]))
    # differences s_n - s_p: -1, 1, 1, -1
    expected = (2 * softplus(-1) + 2 * softplus(1)) / 4
    assert BPRLoss()(batch).item() == pytest.approx(expected)


def test_uib_pushes_positives_above_and_negatives_below_the_boundary():
    batch = LossInput(torch.tensor([2.0]), torch.tensor([[0.0, 1.0]]),
                      boundary=torch.tensor([0.5]))
    # softplus(0.5 - 2) + alpha * mean(softplus(0 - 0.5), softplus(1 - 0.5))
    expected = softplus(-1.5) + 4 * (softplus(-0.5) + softplus(0.5)) / 2
    assert UIBLoss(alpha=4)(batch).item() == pytest.approx(expected, rel=1e-6)


def test_uib_needs_a_boundary():
    with pytest.raises(ValueError, match="needs the boundary"):
        UIBLoss()(LossInput(torch.zeros(1), torch.zeros(1, 1)))


def test_bce_on_two_items():
    # one positive logit 2, one negative logit -1: (-ln s(2) - ln(1 - s(-1))) / 2
    batch = LossInput(torch.tensor([2.0]), torch.tensor([[-1.0]]))
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = (-math.log(sig(2)) - math.log(1 - sig(-1))) / 2
    assert BCELoss()(batch).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("loss", [BPRLoss(), BCELoss(), UIBLoss(alpha=8)])
def test_losses_stay_finite_for_extreme_scores(loss):
    big = torch.tensor([1e30, -1e30, 0.0], requires_grad=True)
    negs = torch.tensor([[-1e30, 1e30], [1e30, 1e30], [0.0, 0.0]], requires_grad=True)
    batch = LossInput(big, negs, boundary=torch.tensor([1e30, -1e30, 0.0]))
    value = loss(batch)
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(big.grad).all() and torch.isfinite(negs.grad).all()
