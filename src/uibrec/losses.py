"""Losses: they compare scores and never see the model that produced them.

Every loss takes a :class:`LossInput` and returns a scalar averaged over the batch's
positives. ``softplus(x) = -ln sigmoid(-x)`` keeps every value finite for any score.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class LossInput:
    pos_scores: torch.Tensor  # (B,)
    neg_scores: torch.Tensor  # (B, M)
    boundary: torch.Tensor | None = None  # (B,) b_u, for losses with needs_boundary
    user_idx: torch.Tensor | None = None  # (B,)
    pos_items: torch.Tensor | None = None  # (B,)
    neg_items: torch.Tensor | None = None  # (B, M)
    extras: dict = field(default_factory=dict)  # model-supplied terms some losses need


class Loss(nn.Module):
    """Base class. ``needs_boundary`` tells the trainer to compute ``b_u``;
    ``needs_extras`` to ask the model for :meth:`Recommender.loss_extras`."""

    needs_boundary = False
    needs_extras = False

    def __init__(self):
        # Explicit, so that a loss without options accepts none: ``build_components``
        # passes only the keyword arguments a loss's signature names, and nn.Module's
        # own ``**kwargs`` would otherwise let every option through.
        super().__init__()

    def forward(self, batch: LossInput) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after each optimiser step (e.g. to clip learned margins)."""


class BPRLoss(Loss):
    """``softplus(s_n - s_p)`` averaged over every (positive, negative) pair.

    S. Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback", UAI 2009.
    """

    def forward(self, batch):
        return F.softplus(batch.neg_scores - batch.pos_scores.unsqueeze(1)).mean()


class BCELoss(Loss):
    """Binary cross-entropy on logits: positives labelled 1, sampled negatives 0 (NCF).

    X. He et al., "Neural Collaborative Filtering", WWW 2017. Averaged over all
    B * (1 + M) samples, as a pointwise loss is.
    """

    def forward(self, batch):
        pos = F.softplus(-batch.pos_scores).sum()  # -ln sigmoid(s_p)
        neg = F.softplus(batch.neg_scores).sum()  # -ln (1 - sigmoid(s_n))
        return (pos + neg) / (batch.neg_scores.numel() + batch.pos_scores.numel())


class UIBLoss(Loss):
    """The interest-boundary loss (Zhuo et al., "Learning Explicit User Interest Boundary
    for Recommendation", WWW 2022):

    ``phi(b_u - s_p) + alpha * mean_m phi(s_nm - b_u)``, averaged over positives, with
    ``phi = softplus``. The negative term is a mean over the M negatives of a positive, so
    alpha keeps its meaning whatever M is; alpha always weighs the negative side.
    """

    needs_boundary = True

    def __init__(self, alpha: float = 1.0):
        super().__init__()
        if alpha < 0:
            raise ValueError(f"alpha must be non-negative, got {alpha}")
        self.alpha = alpha

    def forward(self, batch):
        if batch.boundary is None:
            raise ValueError("the UIB loss needs the boundary b_u; give the model a boundary head")
        boundary = batch.boundary
        pos = F.softplus(boundary - batch.pos_scores)  # (B,)
        neg = F.softplus(batch.neg_scores - boundary.unsqueeze(1)).mean(1)  # (B,)
        return (pos + self.alpha * neg).mean()


LOSSES: dict[str, type[Loss]] = {}
# For models whose UIB form differs from the generic one (SML): model name -> loss name.
UIB_VARIANTS: dict[str, str] = {}


def register_loss(name: str, cls: type[Loss]) -> type[Loss]:
    LOSSES[name] = cls
    return cls


register_loss("bpr", BPRLoss)
register_loss("bce", BCELoss)
register_loss("uib", UIBLoss)


def resolve_loss_name(model_name: str, loss_name: str, native: str) -> str:
    """``native`` -> the model's own loss; ``uib`` -> the model's UIB variant if any."""
    if loss_name == "native":
        return native
    if loss_name == "uib":
        return UIB_VARIANTS.get(model_name, "uib")
    if loss_name not in LOSSES:
        raise KeyError(f"unknown loss {loss_name!r}; known losses: native, "
                       f"{', '.join(sorted(LOSSES))}")
    return loss_name


# Losses kept in their own modules register themselves on import.
import uibrec.losses_sml  # noqa: E402, F401
