"""Ranking metrics under the paper's sampled protocol and by full ranking.

The rank of a held-out positive is the number of competing items that score *at least as
high* as it: ties count against the positive, so a model that scores everything equally
gets rank = number of competitors and Hit@10 = 0 (NOTES section 3). Ranks start at 0.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch

from uibrec.data.interactions import user_item_csr
from uibrec.data.split import Split
from uibrec.models.base import Recommender, scoring

logger = logging.getLogger(__name__)

DEFAULT_KS = (1, 10)
FLOAT_COUNT_LIMIT = 2**24  # float32 counts 0/1 flags exactly below this many


def metrics_from_ranks(ranks, ks: Sequence[int] = DEFAULT_KS) -> dict:
    """Hit@K, NDCG@K and MRR@K averaged over users, from 0-based ranks."""
    _check_ks(ks)
    ranks = _cpu_tensor(ranks).to(torch.float64)
    if ranks.numel() == 0:  # the means would be NaN, read as a score
        raise ValueError("no ranks to average: give at least one user")
    out = {}
    for k in ks:
        hit = ranks < k
        out[f"hit@{k}"] = hit.double().mean().item()
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 2), 0.0).mean().item()
        out[f"mrr@{k}"] = torch.where(hit, 1.0 / (ranks + 1), 0.0).mean().item()
    return out


def ranks_against(pos_scores: torch.Tensor, other_scores: torch.Tensor) -> torch.Tensor:
    """Rank of each positive ``(B,)`` among its competitors ``(B, C)``; ties count against.

    The comparison is written as float32 0/1 and summed: summing a boolean tensor first
    casts it to int64, which took 11x longer for (2048, 3706) scores. Float32 counts
    are exact below 2**24 competitors; beyond that, the integer sum is used.
    """
    at_least = pos_scores.unsqueeze(1)  # (B, 1)
    if other_scores.shape[1] >= FLOAT_COUNT_LIMIT:
        return (other_scores >= at_least).sum(1)
    counts = torch.empty(other_scores.shape, dtype=torch.float32, device=other_scores.device)
    return torch.ge(other_scores, at_least, out=counts).sum(1).long()


def rank_metrics(pos_scores, candidate_scores, ks: Sequence[int] = DEFAULT_KS) -> dict:
    """Metrics of positives ranked among their candidates.

    Args:
        pos_scores: ``(U,)`` score of each user's held-out item.
        candidate_scores: ``(U, C)`` scores of each user's negative candidates.
        ks: cut-offs.

    Returns:
        ``{"hit@1": ..., "ndcg@1": ..., "mrr@1": ..., "hit@10": ..., ...}``.
    """
    _check_ks(ks)
    pos, cand = _cpu_tensor(pos_scores), _cpu_tensor(candidate_scores)
    if cand.ndim != 2 or pos.shape != cand.shape[:1]:
        raise ValueError(f"expected pos_scores (U,) and candidate_scores (U, C), got "
                         f"{tuple(pos.shape)} and {tuple(cand.shape)}")
    if pos.numel() == 0 or cand.shape[1] == 0:
        raise ValueError(f"expected at least one user and one candidate, got "
                         f"candidate_scores of shape {tuple(cand.shape)}")
    # A NaN compares false with everything: a NaN positive would rank first (a perfect
    # score) and a NaN candidate would never count against its positive.
    for name, scores in (("pos_scores", pos), ("candidate_scores", cand)):
        if scores.is_floating_point() and torch.isnan(scores).any():
            raise ValueError(f"{name} holds NaN at {torch.isnan(scores).sum().item()} "
                             "place(s); NaN scores cannot be ranked")
    return metrics_from_ranks(ranks_against(pos, cand), ks)


def _check_ks(ks: Sequence[int]) -> None:
    bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, (int, np.integer))
           or k < 1]
    if bad or len(ks) == 0:
        raise ValueError(f"ks must be cut-offs of at least 1, got {tuple(ks)!r}")


def _cpu_tensor(values) -> torch.Tensor:
    """A CPU tensor of an array or a tensor on any device (NumPy cannot read CUDA memory)."""
    if isinstance(values, torch.Tensor):
        return values.detach().cpu()
    return torch.as_tensor(np.asarray(values))


class Evaluator:
    """Scores the validation or test positives of a split, sampled and full-ranking.

    Args:
        split: the leave-one-out split.
        candidates: ``(n_eval, C)`` cached negative candidates of ``split.eval_users``.
        ks: metric cut-offs.
        batch_size: users scored at once (bounds memory of full ranking).
        device: where scores are computed; every tensor the evaluator keeps lives there.
        rows: evaluate only these rows of ``split.eval_users`` (a process's share when
            several share the work, see :mod:`uibrec.distributed`); default all.
    """

    def __init__(self, split: Split, candidates: np.ndarray | None, ks=DEFAULT_KS,
                 batch_size: int = 2048, device="cpu", rows: np.ndarray | None = None):
        self.split, self.ks, self.batch_size = split, tuple(ks), batch_size
        self.device = torch.device(device)
        rows = slice(None) if rows is None else np.asarray(rows, dtype=np.int64)
        self.users = torch.as_tensor(split.eval_users[rows], device=self.device)
        self.targets = {
            "valid": torch.as_tensor(split.valid_items[rows], device=self.device),
            "test": torch.as_tensor(split.test_items[rows], device=self.device),
        }
        self.candidates = (None if candidates is None
                           else torch.as_tensor(candidates[rows], device=self.device))
        self._masks = {}

    def _exclusions(self, which: str):
        """CSR of the items masked in full ranking: training items and the other held-out."""
        if which not in self._masks:
            target = self.split.valid_items if which == "valid" else self.split.test_items
            other = self.split.test_items if which == "valid" else self.split.valid_items
            # A published split without validation has valid = test: never mask the target.
            differs = other != target
            users = np.concatenate([self.split.train.user_idx, self.split.eval_users[differs]])
            items = np.concatenate([self.split.train.item_idx, other[differs]])
            indptr, indices = user_item_csr(users, items, self.split.num_users)
            # On the scoring device: a CUDA index cannot read a CPU tensor.
            self._masks[which] = (torch.as_tensor(indptr, device=self.device),
                                  torch.as_tensor(indices, device=self.device))
        return self._masks[which]

    @torch.no_grad()
    def ranks(self, model: Recommender, which: str = "valid", protocol: str = "sampled"):
        """0-based rank of each evaluated user's held-out item: ``(n_eval,)``."""
        if which not in self.targets:
            raise ValueError(f"which must be 'valid' or 'test', got {which!r}")
        if protocol not in ("sampled", "full"):
            raise ValueError(f"protocol must be 'sampled' or 'full', got {protocol!r}")
        with scoring(model):
            if protocol == "sampled":
                return self._sampled_ranks(model, which)
            return self._full_ranks(model, which)

    def evaluate(self, model: Recommender, which: str = "valid",
                 protocol: str = "sampled") -> dict:
        return metrics_from_ranks(self.ranks(model, which, protocol), self.ks)

    def _sampled_ranks(self, model, which):
        if self.candidates is None:
            raise ValueError("sampled evaluation needs candidates")
        targets = self.targets[which]
        out = []
        for start in range(0, len(self.users), self.batch_size):
            sl = slice(start, start + self.batch_size)
            items = torch.cat([targets[sl].unsqueeze(1), self.candidates[sl]], dim=1)  # (B, 1+C)
            scores = model.score(self.users[sl], items)
            out.append(ranks_against(scores[:, 0], scores[:, 1:]))
        return torch.cat(out)

    def _full_ranks(self, model, which):
        indptr, indices = self._exclusions(which)
        targets = self.targets[which]
        out = []
        for start in range(0, len(self.users), self.batch_size):
            users = self.users[start:start + self.batch_size]
            scores = model.score_all(users)  # (B, num_items)
            pos = scores.gather(1, targets[start:start + len(users)].unsqueeze(1)).squeeze(1)
            lengths = indptr[users + 1] - indptr[users]
            rows = torch.repeat_interleave(torch.arange(len(users), device=self.device),
                                           lengths)
            offsets = torch.arange(len(rows), device=self.device) - torch.repeat_interleave(
                torch.cumsum(lengths, 0) - lengths, lengths)
            cols = indices[torch.repeat_interleave(indptr[users], lengths) + offsets]
            scores[rows, cols] = -torch.inf
            # The positive itself scores >= itself: subtract it from the count.
            out.append(ranks_against(pos, scores) - 1)
        return torch.cat(out)
