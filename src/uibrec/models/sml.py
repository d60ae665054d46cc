"""Symmetric metric learning: users and items are points, closer means more relevant.

M. Li et al., "Symmetric Metric Learning with Adaptive Margin for Recommendation",
AAAI 2020. The score is the negated squared distance, so that higher stays better; the
loss (:mod:`uibrec.losses_sml`) learns the margins.
"""

from __future__ import annotations

import torch

from uibrec.models.mf import EmbeddingModel


def squared_distance(points: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """``||points[b] - others[b, k]||^2`` from ``(B, d)`` and ``(B, K, d)``: ``(B, K)``."""
    return (others - points.unsqueeze(1)).pow(2).sum(-1)


class SML(EmbeddingModel):
    """``s(u, i) = -||P_u - Q_i||^2``; every embedding row is kept at norm <= 1."""

    native_loss = "sml"

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
        neg = self.items(item_vecs_idx[:, 1:])  # (B, M, d)
        return {"pos_neg_distance": squared_distance(pos, neg)}
