"""NCF: the split first layer, chunked full scoring, and its BCE loss by hand."""

from __future__ import annotations

import pytest
import torch

import uibrec.models.ncf as ncf_module
from uibrec.models.ncf import NCF
from uibrec.training import _batch_loss


def test_bce_loss_by_hand(synthetic_split, make_components):
    _, comp = make_components("ncf", "native", synthetic_split, dim=2,
                              model_options={"layers": [2]})
    model = comp.model
    with torch.no_grad():
        model.user_embedding[0] = torch.tensor([1.0, 0.0])
        model.item_embedding[0] = torch.tensor([0.0, 1.0])
        model.item_embedding[1] = torch.tensor([1.0, 1.0])
        model.user_proj.weight.copy_(torch.eye(2))
        model.user_proj.bias.zero_()
        model.item_proj.weight.copy_(torch.eye(2))
        model.tower[1].weight.copy_(torch.tensor([[1.0, 1.0]]))
        model.tower[1].bias.fill_(-2.0)
    # hidden = relu(P_u + Q_i): item 0 -> [1, 1], logit 1 + 1 - 2 = 0;
    #                           item 1 -> [2, 1], logit 2 + 1 - 2 = 1.
    # Positive item 1, negative item 0: (softplus(-1) + softplus(0)) / 2
    #   = (0.3132617 + 0.6931472) / 2 = 0.5032044
    loss, _, _ = _batch_loss(comp, torch.tensor([0]), torch.tensor([1]),
                             torch.tensor([[0]]), 0.0)
    assert loss.item() == pytest.approx(0.5032044, abs=1e-6)


def test_split_first_layer_equals_the_concatenation():
    torch.manual_seed(0)
    model = NCF(3, 5, dim=4, layers=[6, 3])
    model.eval()
    users, items = torch.tensor([0, 2]), torch.tensor([[1, 4, 0], [3, 3, 2]])
    concat = torch.cat([model.user_embedding[users].unsqueeze(1).expand(-1, 3, -1),
                        model.item_embedding[items]], dim=-1)  # (B, K, 2d)
    first = torch.nn.Linear(8, 6)
    with torch.no_grad():
        first.weight.copy_(torch.cat([model.user_proj.weight, model.item_proj.weight], 1))
        first.bias.copy_(model.user_proj.bias)
    expected = model.tower(first(concat)).squeeze(-1)
    torch.testing.assert_close(model.score(users, items), expected)


def test_score_all_in_chunks(monkeypatch):
    torch.manual_seed(0)
    model = NCF(7, 5, dim=4, layers=[4])
    model.eval()
    monkeypatch.setattr(ncf_module, "CHUNK_ROWS", 11)  # two users per chunk
    users = torch.arange(7)
    expected = model.score(users, torch.arange(5).expand(7, -1))
    torch.testing.assert_close(model.score_all(users), expected)


def test_layers_are_checked():
    with pytest.raises(ValueError, match="layers"):
        NCF(2, 2, layers=[])
    with pytest.raises(ValueError, match="layers"):
        NCF(2, 2, layers=[8, 0])
    assert NCF(2, 2, layers=8).layers == [8]
