"""The MLP variant of Neural Collaborative Filtering.

X. He et al., "Neural Collaborative Filtering", WWW 2017: the user and item embeddings
are concatenated and passed through a tower of ReLU layers that ends in one logit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from uibrec.models.mf import EmbeddingModel

# Rows of the (user, item) grid that score_all pushes through the tower at once: bounds
# its memory to about CHUNK_ROWS * layers[0] floats (64 MiB with the default tower).
CHUNK_ROWS = 1 << 18

TOWERS = ("scaled", "plain")
RELU_GAIN = math.sqrt(2)  # He's gain for a layer followed by a ReLU


class ScaledLinear(nn.Linear):
    """A linear layer stored ``fan_in`` times larger: ``y = (V x + v) / fan_in``.

    Why: Adagrad (the paper's optimiser, with PyTorch's zero initial accumulator) moves
    every parameter by exactly ``lr`` on its first step, whatever the size of its
    gradient, and by about ``lr / sqrt(t)`` later. At lr 1 a plain tower's weights (about
    0.1 at start) and biases all jump by 1 at once, in directions that agree within a
    unit (its inputs are ReLU outputs, all >= 0): the logits blow up to ~1e4 and most
    ReLUs die for good. Stored ``fan_in`` times larger, weight and bias move by
    ``lr / fan_in`` on that step, so a unit's pre-activation moves by at most about
    ``lr`` times the mean of its inputs (the bias counts as one more input of 1). The
    effective weight starts at He's initialisation ``N(0, gain^2 / fan_in)`` and the
    bias at 0, so that the spread of the embeddings reaches the logit.

    Args:
        fan_in: the fan-in the scale and the initialisation use; defaults to
            ``in_features`` (the two halves of NCF's split first layer pass that of the
            whole concatenation).
        gain: ``sqrt(2)`` before a ReLU, 1 for the output logit.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 fan_in: int | None = None, gain: float = RELU_GAIN):
        self.fan_in = fan_in or in_features
        self.gain = gain
        super().__init__(in_features, out_features, bias)  # calls reset_parameters

    def reset_parameters(self) -> None:
        std = self.gain / math.sqrt(self.fan_in)  # of the effective weight
        nn.init.normal_(self.weight, std=std * self.fan_in)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x):
        bias = None if self.bias is None else self.bias / self.fan_in
        return F.linear(x, self.weight / self.fan_in, bias)


class NCF(EmbeddingModel):
    """``s(u, i) = MLP([P_u, Q_i])``, a logit; dropout on the embeddings while training.

    The first layer on the concatenation is split as ``W_u P_u + W_i Q_i + c``, so each
    half is computed once per user and once per item, not once per (user, item) pair.

    Args:
        layers: the tower's hidden sizes after the concatenation. The default halves
            the ``2 * dim = 64`` inputs to 32, 16 and 8, the tower of He et al.'s own
            experiments (the UIB paper does not state its sizes).
        tower: ``"scaled"`` (default) stores each weight divided by its layer's fan-in
            and starts it at He's initialisation (:class:`ScaledLinear`), which lets the
            tower train with Adagrad at the paper's lr of 1; ``"plain"`` is PyTorch's
            ``nn.Linear`` with its default initialisation, whose tower collapses to
            near-constant scores under Adagrad at lr 1 (it suits small Adam steps).
    """

    native_loss = "bce"

    def __init__(self, num_users: int, num_items: int, dim: int = 32,
                 layers: Sequence[int] = (32, 16, 8), dropout: float = 0.0,
                 init_std: float = 0.1, seed: int = 0, tower: str = "scaled"):
        super().__init__(num_users, num_items, dim, dropout, init_std, seed)
        layers = _check_layers(layers)
        if tower not in TOWERS:
            raise ValueError(f"NCF tower must be one of {', '.join(TOWERS)}, got {tower!r}")
        self.layers = layers
        linear = _scaled_linear if tower == "scaled" else _plain_linear
        self.user_proj = linear(dim, layers[0], fan_in=2 * dim)  # W_u and the first bias
        self.item_proj = linear(dim, layers[0], fan_in=2 * dim, bias=False)  # W_i
        sizes = list(zip(layers, layers[1:] + [1], strict=True))
        tower_layers: list[nn.Module] = []
        for k, (size_in, size_out) in enumerate(sizes):
            last = k == len(sizes) - 1
            tower_layers += [nn.ReLU(inplace=True),
                             linear(size_in, size_out, gain=1.0 if last else RELU_GAIN)]
        self.tower = nn.Sequential(*tower_layers)

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


def _scaled_linear(size_in, size_out, fan_in=None, bias=True, gain=RELU_GAIN):
    return ScaledLinear(size_in, size_out, bias, fan_in, gain)


def _plain_linear(size_in, size_out, fan_in=None, bias=True, gain=None):
    return nn.Linear(size_in, size_out, bias)


def _check_layers(layers) -> list[int]:
    if isinstance(layers, int):
        layers = [layers]
    layers = list(layers)
    if not layers or any(not isinstance(n, int) or n < 1 for n in layers):
        raise ValueError(f"NCF layers must be a non-empty list of positive sizes, got {layers!r}")
    return layers
