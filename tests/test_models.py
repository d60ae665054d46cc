"""The contract every model honours with every loss: the paper's eight configurations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from uibrec.data.candidates import sample_candidates
from uibrec.evaluation import Evaluator
from uibrec.runs import evaluate_run
from uibrec.runs import train as train_run
from uibrec.sampling import NegativeSampler
from uibrec.training import _batch_loss, make_optimizer

MODELS = ("mf", "ncf", "sml", "lightgcn")
CONFIGS = [(model, loss) for model in MODELS for loss in ("native", "uib")]
EXPECTED_LOSS = {
    ("mf", "native"): "bpr", ("ncf", "native"): "bce", ("sml", "native"): "sml",
    ("lightgcn", "native"): "bpr", ("sml", "uib"): "sml_uib",
    ("mf", "uib"): "uib", ("ncf", "uib"): "uib", ("lightgcn", "uib"): "uib",
}


@pytest.mark.parametrize(("model_name", "loss_name"), CONFIGS)
def test_model_loss_contract(model_name, loss_name, tmp_path, synthetic_split,
                             make_components):
    split = synthetic_split
    config, comp = make_components(model_name, loss_name, split)
    assert comp.loss_name == EXPECTED_LOSS[model_name, loss_name]
    assert (comp.boundary is not None) == (loss_name == "uib")
    optimizer = make_optimizer(config, comp.parameters())
    sampler = NegativeSampler(split.train.user_idx, split.train.item_idx, split.num_users,
                              split.num_items, seed=0)
    users = torch.as_tensor(split.train.user_idx)
    pos = torch.as_tensor(split.train.item_idx)
    negatives = sampler.sample(users, comp.num_negatives)  # the same batch every step
    # (alpha is 0.5: with alpha = 1 and every SML hinge active, the two sides pull b_u
    # equally hard both ways and its gradient is exactly 0.)

    losses = []
    for step in range(15):
        loss, _, _ = _batch_loss(comp, users, pos, negatives, weight_decay=1e-3)
        optimizer.zero_grad()
        loss.backward()
        for name, param in comp.model.named_parameters():
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
        if comp.boundary is not None and step == 0:
            assert comp.boundary.linear.weight.grad.abs().sum() > 0
        optimizer.step()
        comp.model.after_step()
        comp.loss.after_step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0] - 1e-3, losses

    # Scores: finite, and score_all agrees with score on the same pairs.
    comp.model.eval()
    comp.model.prepare()
    eval_users = torch.as_tensor(split.eval_users)
    with torch.no_grad():
        everything = comp.model.score_all(eval_users)  # (U, num_items)
        items = torch.arange(split.num_items).expand(len(eval_users), -1)
        pairwise = comp.model.score(eval_users, items)
    assert everything.shape == (len(eval_users), split.num_items)
    assert torch.isfinite(everything).all()
    torch.testing.assert_close(everything, pairwise, rtol=1e-5, atol=1e-5)
    metrics = Evaluator(split, sample_candidates(split, 5)).evaluate(comp.model, "test", "full")
    assert all(np.isfinite(v) for v in metrics.values())

    # Save, then load into freshly built (differently seeded) components: same scores.
    torch.save(comp.state_dict(), tmp_path / "state.pt")
    _, fresh = make_components(model_name, loss_name, split, seed=1)
    fresh.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    fresh.model.eval()
    with torch.no_grad():
        assert torch.equal(fresh.model.score_all(eval_users), everything)
        if comp.boundary is not None:
            vecs = comp.model.users(eval_users)
            assert torch.equal(fresh.boundary(vecs, eval_users), comp.boundary(vecs, eval_users))


@pytest.mark.parametrize(("model_name", "loss_name"), CONFIGS)
def test_saved_run_scores_the_same(model_name, loss_name, tmp_path, cluster_rows,
                                   small_options):
    users, items = cluster_rows
    data_file = tmp_path / "rows.tsv"
    data_file.write_text("".join(f"{u}\t{i}\n" for u, i in zip(users, items, strict=True)))
    metrics = train_run(dataset=str(data_file), model=model_name, loss=loss_name, dim=8,
                        epochs=2, eval_every=1, num_candidates=5, lr=0.1,
                        model_options=small_options.get(model_name, {}),
                        output=str(tmp_path / "runs"), progress=False)
    again = evaluate_run(metrics["run_dir"])
    assert again["test"] == metrics["test"]
    assert again["test_full"] == metrics["test_full"]


def test_options_reach_model_and_loss(synthetic_split, make_components):
    split = synthetic_split
    _, ncf = make_components("ncf", "native", split, model_options={"layers": [12, 6, 3]})
    assert ncf.model.layers == [12, 6, 3]
    assert ncf.num_negatives == 4  # pointwise BCE's default
    _, sml = make_components("sml", "uib", split, alpha=0.2,
                             loss_options={"lam": 0.5, "gamma": 3.0})
    assert (sml.loss.lam, sml.loss.gamma, sml.loss.alpha) == (0.5, 3.0, 0.2)
    assert sml.loss.user_margin.shape == (split.num_users,)
    assert sml.loss.item_margin.shape == (split.num_items,)
    assert sml.num_negatives == 32
    _, gcn = make_components("lightgcn", "native", split, model_options={"layers": 1})
    assert gcn.model.layers == 1 and gcn.num_negatives == 1


def test_mf_fused_score_equals_the_generic_one(synthetic_split, make_components):
    # MF scores through the fused lookup and dot; it must equal users . items.
    _, comp = make_components("mf", "native", synthetic_split, dropout=0.3)
    model = comp.model.eval()
    users = torch.tensor([0, 3, 5])
    items = torch.tensor([[1, 2, 3], [0, 0, 4], [7, 6, 5]])
    expected = (model.users(users).unsqueeze(1) * model.items(items)).sum(-1)
    torch.testing.assert_close(model.score(users, items), expected)
