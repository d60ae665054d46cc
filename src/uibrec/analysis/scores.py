"""Scoring every item for many users at once, with the boundary ``b_u`` beside the scores.

The analyses read a model through the :class:`~uibrec.models.Recommender` contract only:
``score_all`` for the scores, ``users`` for what the boundary head reads, ``prepare`` once
before scoring. Users are processed in batches; nothing loops over users in Python.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from uibrec.data.interactions import csr_gather
from uibrec.models.base import BoundaryHead, Recommender, scoring


class NoBoundaryError(ValueError):
    """The run was trained with a native loss, so it has no user interest boundary."""


def require_boundary(run) -> BoundaryHead:
    """The run's boundary head; a clear :class:`NoBoundaryError` when it has none."""
    if run.boundary is None:
        raise NoBoundaryError(
            f"{run.path}: this run was trained with the {run.components.loss_name!r} loss and "
            "has no user interest boundary b_u; train it with --loss uib to get one")
    return run.boundary


@torch.no_grad()
def iter_scores(model: Recommender, head: BoundaryHead | None, user_idx,
                batch_size: int = 1024) -> Iterator[tuple[torch.Tensor, torch.Tensor,
                                                           torch.Tensor | None]]:
    """Yield ``(users (B,), scores (B, num_items), boundary (B,) or None)`` per batch.

    The model is put in eval mode (no dropout) and prepared once; its mode is restored.
    """
    device = _device_of(model)
    user_idx = torch.as_tensor(np.asarray(user_idx, dtype=np.int64), device=device)
    with scoring(model):
        for start in range(0, len(user_idx), batch_size):
            users = user_idx[start:start + batch_size]
            scores = model.score_all(users)  # (B, num_items)
            boundary = None if head is None else head(model.users(users), users)  # (B,)
            yield users, scores, boundary


@torch.no_grad()
def user_boundaries(model: Recommender, head: BoundaryHead, user_idx,
                    batch_size: int = 4096) -> np.ndarray:
    """``b_u`` of each user in ``user_idx``: ``(U,)`` float array."""
    device = _device_of(model)
    user_idx = torch.as_tensor(np.asarray(user_idx, dtype=np.int64), device=device)
    with scoring(model):
        out = [head(model.users(users), users)
               for users in torch.split(user_idx, batch_size)]
    return torch.cat(out).cpu().numpy() if out else np.zeros(0, dtype=np.float32)


@torch.no_grad()
def pair_scores(model: Recommender, user_idx, item_idx, batch_size: int = 65536) -> np.ndarray:
    """Scores of single (user, item) pairs ``(n,)``; ``item_idx`` may also be ``(n, K)``."""
    device = _device_of(model)
    users = torch.as_tensor(np.asarray(user_idx, dtype=np.int64), device=device)
    items = torch.as_tensor(np.asarray(item_idx, dtype=np.int64), device=device)
    squeeze = items.ndim == 1
    items = items.unsqueeze(1) if squeeze else items  # (n, K)
    with scoring(model):
        out = [model.score(users[s:s + batch_size], items[s:s + batch_size])
               for s in range(0, len(users), batch_size)]
    if not out:
        return np.zeros((0,) if squeeze else (0, items.shape[1]), dtype=np.float32)
    scores = torch.cat(out).cpu().numpy()
    return scores[:, 0] if squeeze else scores


def dense_mask(indptr: np.ndarray, indices: np.ndarray, users, num_items: int,
               device="cpu") -> torch.Tensor:
    """The CSR rows of ``users`` as a dense ``(B, num_items)`` boolean mask."""
    users = np.asarray(users.cpu() if isinstance(users, torch.Tensor) else users)
    owner, cols = csr_gather(indptr, indices, users)
    mask = torch.zeros(len(users), num_items, dtype=torch.bool, device=device)
    mask[torch.as_tensor(owner, device=device), torch.as_tensor(cols, device=device)] = True
    return mask


def _device_of(model: torch.nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")
