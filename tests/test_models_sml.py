"""SML: distances as scores, the norm ball, and its margin losses worked by hand."""

from __future__ import annotations

import pytest
import torch

from uibrec.losses import LOSSES, LossInput, resolve_loss_name
from uibrec.models.sml import SML
from uibrec.training import _batch_loss, make_optimizer


def test_closer_item_scores_higher():
    model = SML(1, 3, dim=2)
    with torch.no_grad():
        model.user_embedding.copy_(torch.tensor([[0.0, 0.0]]))
        model.item_embedding.copy_(torch.tensor([[0.1, 0.0], [0.5, 0.5], [0.0, -0.3]]))
    model.eval()
    # squared distances 0.01, 0.5, 0.09
    expected = torch.tensor([[-0.01, -0.5, -0.09]])
    torch.testing.assert_close(model.score(torch.tensor([0]), torch.tensor([[0, 1, 2]])),
                               expected)
    torch.testing.assert_close(model.score_all(torch.tensor([0])), expected)


def test_after_step_keeps_rows_in_the_unit_ball():
    model = SML(2, 2, dim=2)
    with torch.no_grad():
        model.user_embedding.copy_(torch.tensor([[3.0, 4.0], [0.3, 0.4]]))
        model.item_embedding.copy_(torch.tensor([[0.0, 2.0], [0.6, 0.8]]))
    model.after_step()
    # norm 5 -> 1; 0.5 stays; 2 -> 1; 1 stays
    torch.testing.assert_close(model.user_embedding.detach(),
                               torch.tensor([[0.6, 0.8], [0.3, 0.4]]))
    torch.testing.assert_close(model.item_embedding.detach(),
                               torch.tensor([[0.0, 1.0], [0.6, 0.8]]))


def test_loss_extras_are_positive_to_negative_distances():
    model = SML(1, 3, dim=2)
    with torch.no_grad():
        model.item_embedding.copy_(torch.tensor([[0.0, 0.0], [0.3, 0.4], [1.0, 0.0]]))
    extras = model.loss_extras(torch.zeros(1, 2), torch.tensor([[0, 1, 2]]))
    torch.testing.assert_close(extras["pos_neg_distance"], torch.tensor([[0.25, 1.0]]))


@pytest.mark.parametrize("kernels", [True, False], ids=["compiled", "tensor code"])
def test_training_distances_match_the_direct_form(kernels, monkeypatch):
    # The training path computes |p|^2 + |t|^2 - 2 p.t through the fused lookup; scores,
    # item-side distances and every gradient equal the direct (B, K, d) form's.
    monkeypatch.setattr("uibrec.ops.USE_KERNELS", kernels)
    gen = torch.Generator().manual_seed(4)
    idx = torch.randint(0, 30, (16, 6), generator=gen)
    users = torch.randint(0, 20, (16,), generator=gen)
    weights = torch.randn(16, 6, generator=gen)
    results = []
    for fused in (True, False):
        torch.manual_seed(0)
        model = SML(20, 30, dim=8)
        model.after_step()  # rows into the unit ball, as in training
        model.train()
        if not fused:
            monkeypatch.setattr(SML, "_fused", lambda self: False)
        user_vecs = model.users(users)
        scores = model.score_items(user_vecs, idx)
        extras = model.loss_extras(user_vecs, idx)["pos_neg_distance"]
        ((scores * weights).sum() + extras.pow(2).sum()).backward()
        results.append((scores.detach(), extras.detach(), model.user_embedding.grad,
                        model.item_embedding.grad))
    for fused_value, direct_value in zip(*results):
        torch.testing.assert_close(fused_value, direct_value, rtol=1e-5, atol=1e-6)
    # And the direct form is what the scores are: -||u - i||^2 worked out per pair.
    direct = -(model.item_embedding[idx] - model.user_embedding[users].unsqueeze(1))
    torch.testing.assert_close(results[0][0], -direct.pow(2).sum(-1).detach(),
                               rtol=1e-5, atol=1e-6)


def test_training_with_dropout_takes_the_direct_form():
    model = SML(4, 5, dim=4, dropout=0.5)
    model.train()
    assert not model._fused()
    model.eval()
    assert model._fused()
    assert SML(4, 5, dim=4)._fused()


def _one_triplet(boundary=None):
    # d(u,p) = 0.2, d(u,n) = 0.5, d(p,n) = 0.4; user 0, positive item 1.
    return LossInput(pos_scores=torch.tensor([-0.2]), neg_scores=torch.tensor([[-0.5]]),
                     boundary=boundary, user_idx=torch.tensor([0]),
                     pos_items=torch.tensor([1]), neg_items=torch.tensor([[0]]),
                     extras={"pos_neg_distance": torch.tensor([[0.4]])})


def test_sml_loss_by_hand():
    loss = LOSSES["sml"](num_users=1, num_items=2, lam=0.3, gamma=2.0)
    # user side [0.2 - 0.5 + 1]+ = 0.7; item side [0.2 - 0.4 + 1]+ = 0.8;
    # 0.7 + 0.3 * 0.8 - 2 * (1 + 1) = -3.06, over one positive.
    assert loss(_one_triplet()).item() == pytest.approx(-3.06)


def test_sml_margin_term_averages_the_whole_margin_tables():
    # The paper's L_AM: every user's and every item's margin counts, not only the batch's.
    loss = LOSSES["sml"](num_users=4, num_items=2, lam=0.3, gamma=2.0)
    with torch.no_grad():
        loss.user_margin.copy_(torch.tensor([1.0, 0.2, 0.2, 0.2]))  # mean 0.4
        loss.item_margin.copy_(torch.tensor([0.5, 1.0]))  # mean 0.75
    value = loss(_one_triplet())
    # hinges 0.7 + 0.3 * 0.8 = 0.94 (m_u = n_p = 1); 0.94 - 2 * (0.4 + 0.75) = -1.36
    assert value.item() == pytest.approx(-1.36)
    value.backward()
    # user 0: +1 from its active hinge, -2/4 from the mean; users 1-3 only -2/4.
    torch.testing.assert_close(loss.user_margin.grad, torch.tensor([0.5, -0.5, -0.5, -0.5]))
    # item 0 (not in the batch): -2/2; item 1: +0.3 from the item-side hinge, -2/2.
    torch.testing.assert_close(loss.item_margin.grad, torch.tensor([-1.0, -0.7]))


def test_sml_uib_loss_by_hand():
    loss = LOSSES["sml_uib"](num_users=1, num_items=2, lam=0.3, gamma=2.0, alpha=0.5)
    # b_u = -0.3 (d_b = 0.3): [b - s_p + m]+ = [-0.3 + 0.2 + 1] = 0.9,
    # [s_n - b + m]+ = [-0.5 + 0.3 + 1] = 0.8. The paper's eq. 11 with its alpha = 1 / 0.5:
    # 2 * 0.9 + 0.8 = 2.6, plus 0.3 * 0.8 item side, minus 2 * (1 + 1): -1.16.
    assert loss(_one_triplet(torch.tensor([-0.3]))).item() == pytest.approx(-1.16)


def test_sml_uib_refuses_alpha_zero():
    with pytest.raises(ValueError, match="positive"):
        LOSSES["sml_uib"](num_users=1, num_items=2, alpha=0.0)


def test_sml_loss_averages_negatives_then_positives():
    loss = LOSSES["sml"](num_users=2, num_items=3, lam=0.0, gamma=0.0)
    batch = LossInput(pos_scores=torch.tensor([-0.2, -0.1]),
                      neg_scores=torch.tensor([[-0.5, -3.0], [-0.6, -0.6]]),
                      user_idx=torch.tensor([0, 1]), pos_items=torch.tensor([1, 2]),
                      extras={"pos_neg_distance": torch.zeros(2, 2)})
    # user 0: mean([0.7, 0]) = 0.35; user 1: mean([0.5, 0.5]) = 0.5; mean 0.425
    assert loss(batch).item() == pytest.approx(0.425)


def test_sml_loss_needs_the_model_extras():
    loss = LOSSES["sml"](num_users=1, num_items=2)
    batch = _one_triplet()
    batch.extras = {}
    with pytest.raises(ValueError, match="pos_neg_distance"):
        loss(batch)


def test_uib_resolves_to_the_sml_variant():
    assert resolve_loss_name("sml", "uib", "sml") == "sml_uib"
    assert resolve_loss_name("sml", "native", "sml") == "sml"
    assert resolve_loss_name("mf", "uib", "bpr") == "uib"


@pytest.mark.parametrize(("loss_name", "gamma"), [("native", 0.0), ("native", 1e4),
                                                  ("uib", 0.0), ("uib", 1e4)])
def test_margins_and_norms_stay_bounded(loss_name, gamma, synthetic_split, make_components):
    # gamma 0 drives the margins down, a huge gamma up; a large init and learning rate push
    # the embeddings out of the ball: after every step all must be back within bounds.
    split = synthetic_split
    config, comp = make_components("sml", loss_name, split, lr=5.0,
                                   model_options={"init_std": 2.0},
                                   loss_options={"gamma": gamma})
    optimizer = make_optimizer(config, comp.parameters())
    users = torch.as_tensor(split.train.user_idx)
    pos = torch.as_tensor(split.train.item_idx)
    negatives = torch.randint(0, split.num_items, (len(users), comp.num_negatives))
    for _ in range(3):
        loss, _, _ = _batch_loss(comp, users, pos, negatives, 0.0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        comp.model.after_step()
        comp.loss.after_step()
        for margins in (comp.loss.user_margin, comp.loss.item_margin):
            assert margins.min() >= 0.0 and margins.max() <= 1.0
        for table in (comp.model.user_embedding, comp.model.item_embedding):
            assert table.norm(dim=1).max() <= 1.0 + 1e-6
    touched = comp.loss.user_margin[users.unique()]
    if gamma == 0.0:
        assert touched.max() < 1.0  # the hinges alone lower the margins
    else:
        assert (touched == 1.0).all()  # a huge gamma pins them at the top
