"""Matrix factorisation scored by a dot product, the model of BPR.

S. Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from uibrec.models.base import Recommender
from uibrec.ops import Dropout, batch_dot, gather_dot


class EmbeddingModel(Recommender):
    """A user table and an item table with dropout on the rows a batch reads; subclasses
    say how a user vector and an item vector make a score (:meth:`interact`)."""

    def __init__(self, num_users: int, num_items: int, dim: int = 32, dropout: float = 0.0,
                 init_std: float = 0.1, seed: int = 0):
        super().__init__()
        self.num_users, self.num_items, self.dim = num_users, num_items, dim
        self.user_embedding = nn.Parameter(torch.randn(num_users, dim) * init_std)
        self.item_embedding = nn.Parameter(torch.randn(num_items, dim) * init_std)
        self.dropout = Dropout(dropout, seed)

    def users(self, user_idx):
        rows = self._user_rows(user_idx.reshape(-1))
        return self.dropout(rows.view(*user_idx.shape, self.dim), self.training)

    def sparse_parameters(self):
        return [self.user_embedding] if self.sparse_gradients else []

    def _user_rows(self, user_idx):
        if self.sparse_gradients and torch.is_grad_enabled():
            return F.embedding(user_idx, self.user_embedding, sparse=True)
        # index_select's dense backward is one index_add_, far cheaper on the CPU than
        # the sort-based one of F.embedding.
        return self.user_embedding.index_select(0, user_idx)

    def items(self, item_idx):
        rows = self.item_embedding.index_select(0, item_idx.reshape(-1))
        return self.dropout(rows.view(*item_idx.shape, self.dim), self.training)

    def regularization(self, user_idx, pos_items, neg_items):
        users = self._user_rows(user_idx).pow(2).sum()
        pos = self.item_embedding[pos_items].pow(2).sum()
        neg = self.item_embedding[neg_items].pow(2).sum() / neg_items.shape[-1]
        return (users + pos + neg) / len(user_idx)


class MF(EmbeddingModel):
    """``s(u, i) = P_u . Q_i``, with dropout on the embeddings while training."""

    native_loss = "bpr"

    def score_items(self, user_vecs, item_idx):
        # Lookup, dropout and dot product fused (see uibrec.ops.gather_dot).
        dropout = self.dropout if self.training else None
        return gather_dot(user_vecs, self.item_embedding, item_idx, dropout)

    def interact(self, user_vecs, item_vecs):
        return batch_dot(user_vecs, item_vecs)  # (B, K)

    def score(self, user_idx, item_idx):
        # The fused lookup and dot: evaluating 6,040 users on 101 candidates never builds
        # their (6040, 101, d) block of item vectors.
        return self.score_items(self.users(user_idx), item_idx)

    def score_all(self, user_idx):
        return self.users(user_idx) @ self.item_embedding.T  # (B, num_items)
