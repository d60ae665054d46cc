import torch

from uibrec.ops import Dropout, batch_dot


def test_batch_dot_matches_autograd():
    torch.manual_seed(0)
    users = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    items = torch.randn(4, 5, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(batch_dot, (users, items))
    expected = (items * users.unsqueeze(1)).sum(-1)
    assert torch.allclose(batch_dot(users, items), expected)


def test_dropout_keeps_expected_share_and_rescales():
    drop = Dropout(0.25, seed=0)
    out = drop(torch.ones(200_000), training=True)
    kept = out > 0
    # p = 64/256 exactly; kept values are 1 / (1 - p)
    assert abs(kept.float().mean().item() - 0.75) < 0.005
    assert torch.allclose(out[kept], torch.tensor(1 / 0.75))
    assert torch.equal(drop(torch.ones(5), training=False), torch.ones(5))


def test_dropout_is_seeded():
    a = Dropout(0.1, seed=3)(torch.ones(1000), True)
    b = Dropout(0.1, seed=3)(torch.ones(1000), True)
    assert torch.equal(a, b)
