"""The MLP variant of Neural Collaborative Filtering.

X. He et al., "Neural Collaborative Filtering", WWW 2017: the user and item embeddings
are concatenated and passed through a tower of ReLU layers that ends in one logit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from uibrec.models.mf import EmbeddingModel

# Rows of the (user, item) grid that score_all pushes through the tower at once: bounds
# its memory to about CHUNK_ROWS * layers[0] floats (64 MiB with the default tower).
CHUNK_ROWS = 1 << 18


class NCF(EmbeddingModel):
    """``s(u, i) = MLP([P_u, Q_i])``, a logit; dropout on the embeddings while training.

    The first layer on the concatenation is split as ``W_u P_u + W_i Q_i + c``, so each
    half is computed once per user and once per item, not once per (user, item) pair.

    Args:
        layers: the tower's hidden sizes; the default halves from 64 to 8 (the paper
            does not state the sizes it used).
    """

    native_loss = "bce"

    def __init__(self, num_users: int, num_items: int, dim: int = 32,
                 layers: Sequence[int] = (64, 32, 16, 8), dropout: float = 0.0,
                 init_std: float = 0.1, seed: int = 0):
        super().__init__(num_users, num_items, dim, dropout, init_std, seed)
        layers = _check_layers(layers)
        self.layers = layers
        self.user_proj = nn.Linear(dim, layers[0])  # W_u and the first layer's bias
        self.item_proj = nn.Linear(dim, layers[0], bias=False)  # W_i
        tower: list[nn.Module] = []
        for size_in, size_out in zip(layers, layers[1:] + [1], strict=True):
            tower += [nn.ReLU(inplace=True), nn.Linear(size_in, size_out)]
        self.tower = nn.Sequential(*tower)

    def interact(self, user_vecs, item_vecs):
        hidden = self.item_proj(item_vecs)  # (B, K, h)
        hidden += self.user_proj(user_vecs).unsqueeze(1)  # in place: no second (B, K, h)
        return self.tower(hidden).squeeze(-1)  # (B, K)

    def score_all(self, user_idx):
        user_part = self.user_proj(self.users(user_idx))  # (B, h)
        item_part = self.item_proj(self.item_embedding)  # (num_items, h)
        step = max(1, CHUNK_ROWS // self.num_items)
        chunks = []
        for lo in range(0, len(user_idx), step):
            hidden = user_part[lo:lo + step].unsqueeze(1) + item_part  # (c, num_items, h)
            chunks.append(self.tower(hidden).squeeze(-1))  # (c, num_items)
        return torch.cat(chunks)  # (B, num_items)


def _check_layers(layers) -> list[int]:
    if isinstance(layers, int):
        layers = [layers]
    layers = list(layers)
    if not layers or any(not isinstance(n, int) or n < 1 for n in layers):
        raise ValueError(f"NCF layers must be a non-empty list of positive sizes, got {layers!r}")
    return layers
