"""Symmetric metric learning: users and items are points, closer means more relevant.

M. Li et al., "Symmetric Metric Learning with Adaptive Margin for Recommendation",
AAAI 2020. The score is the negated squared distance, so that higher stays better; the
loss (:mod:`uibrec.losses_sml`) learns the margins.
"""

from __future__ import annotations

import torch

from uibrec.models.mf import EmbeddingModel
from uibrec.ops import gather_dot


def squared_distance(points: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """``||points[b] - others[b, k]||^2`` from ``(B, d)`` and ``(B, K, d)``: ``(B, K)``."""
    return (others - points.unsqueeze(1)).pow(2).sum(-1)


def gathered_squared_distance(points: torch.Tensor, table: torch.Tensor,
                              idx: torch.Tensor) -> torch.Tensor:
    """``||points[b] - table[idx[b, k]]||^2`` as ``|p|^2 + |t|^2 - 2 p . t``: ``(B, K)``.

    The dot products go through the fused lookup (:func:`uibrec.ops.gather_dot`), which
    never builds the ``(B, K, d)`` block of rows nor autograd's backward of it; the row
    norms are taken over the whole table, as the step's renormalisation does. The
    same distances as :func:`squared_distance` up to rounding (rows have norm <= 1).
    """
    row_norms = table.pow(2).sum(1)  # (N,)
    cross = gather_dot(points, table, idx)  # (B, K)
    # index_select: its backward is one index_add_, where indexing's accumulates slowly.
    norms = row_norms.index_select(0, idx.reshape(-1)).view(idx.shape)  # (B, K)
    return points.pow(2).sum(1, keepdim=True) + norms - 2 * cross


class SML(EmbeddingModel):
    """``s(u, i) = -||P_u - Q_i||^2``; every embedding row is kept at norm <= 1."""

    native_loss = "sml"

    def _fused(self) -> bool:
        # Dropout masks item rows inside the lookup, which the row norms would not see.
        return not (self.training and self.dropout.threshold)

    def score_items(self, user_vecs, item_idx):
        if self._fused():
            return -gathered_squared_distance(user_vecs, self.item_embedding, item_idx)
        return super().score_items(user_vecs, item_idx)

    def interact(self, user_vecs, item_vecs):
        return -squared_distance(user_vecs, item_vecs)  # (B, K)

    def score_all(self, user_idx):
        users = self.users(user_idx)  # (B, d)
        items = self.item_embedding  # (num_items, d)
        cross = users @ items.T  # (B, num_items)
        distance = users.pow(2).sum(1, keepdim=True) - 2 * cross + items.pow(2).sum(1)
        return -distance.clamp(min=0)  # (B, num_items)

    @torch.no_grad()
    def after_step(self):
        # Renormalising every row costs about as much as one batch's gathers, and keeps
        # rows the batch did not touch within the ball too (they never leave it anyway).
        for table in (self.user_embedding, self.item_embedding):
            norms = table.norm(dim=1, keepdim=True)  # (n, 1)
            table.div_(norms.clamp(min=1.0))

    def loss_extras(self, user_vecs, item_vecs_idx):
        """``pos_neg_distance``: ``d(p, n)`` of each positive to each of its negatives,
        ``(B, M)``, for SML's item-side hinge."""
        pos = self.items(item_vecs_idx[:, 0])  # (B, d)
        if self._fused():
            distance = gathered_squared_distance(pos, self.item_embedding,
                                                 item_vecs_idx[:, 1:].contiguous())
        else:
            distance = squared_distance(pos, self.items(item_vecs_idx[:, 1:]))  # (B, M)
        return {"pos_neg_distance": distance}
