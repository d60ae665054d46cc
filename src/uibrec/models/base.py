"""The contract every model honours: it scores (user, item) pairs and nothing else.

Higher scores mean more relevant. A model exposes the user representation that the
boundary head reads, so that UIB can ride on any model. Losses live in
:mod:`uibrec.losses` and never see the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from uibrec.ops import Dropout


class Recommender(nn.Module):
    """Base class. Subclasses set ``num_users``, ``num_items``, ``dim`` and implement
    :meth:`users`, :meth:`items` and :meth:`interact`.

    The trainer calls :meth:`prepare` once per training batch and once before evaluation:
    a graph model propagates its embeddings there, others do nothing.
    """

    num_users: int
    num_items: int
    dim: int
    native_loss: str = "bpr"
    # True for models built from the training interactions (a graph): they take
    # ``train_users`` and ``train_items`` and are rebuilt from the split when loaded.
    needs_training_data: bool = False
    # Set by the trainer when its optimiser takes sparse gradients (Adagrad): models with
    # a user table then give it row-sparse gradients, so that a step costs the batch's
    # rows and not the whole table (70,000 users x 32 in ML-10M).
    sparse_gradients: bool = False

    def sparse_parameters(self) -> list[nn.Parameter]:
        """The parameters whose gradients are row-sparse under ``sparse_gradients``."""
        return []

    def prepare(self, user_idx: torch.Tensor | None = None,
                item_idx: torch.Tensor | None = None) -> None:
        """Recompute anything shared by all scores of the next batch (default: nothing).
        A training step names the users and items it will read, and reads no others."""

    def users(self, user_idx: torch.Tensor) -> torch.Tensor:
        """User representations ``(..., dim)``; the boundary head reads these."""
        raise NotImplementedError

    def items(self, item_idx: torch.Tensor) -> torch.Tensor:
        """Item representations ``(..., dim)``."""
        raise NotImplementedError

    def interact(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
        """Scores from user ``(B, dim)`` and item ``(B, K, dim)`` vectors: ``(B, K)``."""
        raise NotImplementedError

    def score_items(self, user_vecs: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """Scores of items ``(B, K)`` for user vectors ``(B, dim)``: ``(B, K)``.

        The trainer's hot path; models may fuse the item lookup with :meth:`interact`.
        """
        return self.interact(user_vecs, self.items(item_idx))

    def score(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """Scores of ``item_idx`` ``(B, K)`` for ``user_idx`` ``(B,)``: ``(B, K)``."""
        return self.interact(self.users(user_idx), self.items(item_idx))

    def score_all(self, user_idx: torch.Tensor) -> torch.Tensor:
        """Scores of every item for ``user_idx`` ``(B,)``: ``(B, num_items)``.

        The default scores all items through :meth:`interact`; models with a cheaper
        closed form (a matrix product) override it.
        """
        all_items = torch.arange(self.num_items, device=user_idx.device)
        return self.score(user_idx, all_items.expand(len(user_idx), -1))

    def after_step(self) -> None:
        """Called after each optimiser step (e.g. to keep embedding norms bounded)."""

    def loss_extras(self, user_vecs: torch.Tensor, item_vecs_idx: torch.Tensor) -> dict:
        """Extra terms a loss with ``needs_extras`` reads, from the batch's user vectors
        ``(B, d)`` and item indices ``(B, 1+M)`` (positive first). Default: none."""
        return {}

    def regularization(self, user_idx, pos_items, neg_items) -> torch.Tensor:
        """Squared norm of the input embedding rows used by a batch, per positive.

        ``sum_b (|P_u|^2 + |Q_p|^2 + mean_m |Q_n|^2) / B``; the trainer multiplies it by
        ``weight_decay / 2``. Models without plain embedding tables return 0.
        """
        return torch.zeros((), device=user_idx.device)

    def _dropouts(self) -> Iterator[tuple[str, Dropout]]:
        for prefix, module in self.named_modules():
            for name, value in vars(module).items():
                if isinstance(value, Dropout):
                    yield (f"{prefix}.{name}" if prefix else name), value

    def random_state(self) -> dict:
        """The state of every random stream the model draws from while training (its
        :class:`uibrec.ops.Dropout` masks), keyed by attribute path, for checkpoints."""
        return {name: dropout.get_state() for name, dropout in self._dropouts()}

    def set_random_state(self, state: dict) -> None:
        """Continue the model's random streams from a :meth:`random_state`."""
        dropouts = dict(self._dropouts())
        if set(state) != set(dropouts):
            raise ValueError(f"random state for dropouts {sorted(state)}, but the model has "
                             f"{sorted(dropouts)}")
        for name, dropout in dropouts.items():
            dropout.set_state(state[name])


class BoundaryHead(nn.Module):
    """The user's interest boundary ``b_u`` (UIB, Zhuo et al., WWW 2022).

    ``kind="linear"``: ``b_u = W . P_u + c``, read from the user representation, as in the
    authors' code. ``kind="free"``: a free learned scalar per user.
    """

    def __init__(self, dim: int, num_users: int, kind: str = "linear"):
        super().__init__()
        if kind not in ("linear", "free"):
            raise ValueError(f"boundary must be 'linear' or 'free', got {kind!r}")
        self.kind = kind
        if kind == "linear":
            self.linear = nn.Linear(dim, 1)
        else:
            self.offset = nn.Embedding(num_users, 1)
            nn.init.zeros_(self.offset.weight)

    def forward(self, user_vecs: torch.Tensor, user_idx: torch.Tensor) -> torch.Tensor:
        """``b_u`` for each user: ``(B,)``."""
        if self.kind == "linear":
            return self.linear(user_vecs).squeeze(-1)
        return self.offset(user_idx).squeeze(-1)


@contextmanager
def scoring(model: Recommender) -> Iterator[Recommender]:
    """Eval mode (no dropout) and one :meth:`Recommender.prepare` for a block of scoring;
    the model's mode is restored afterwards."""
    was_training = model.training
    model.eval()
    model.prepare()
    try:
        yield model
    finally:
        model.train(was_training)
