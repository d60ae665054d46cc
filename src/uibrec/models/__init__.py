"""Models: they only score. Register a new one with :func:`register_model`."""

from __future__ import annotations

from uibrec.models.base import BoundaryHead, Recommender
from uibrec.models.lightgcn import LightGCN
from uibrec.models.mf import MF
from uibrec.models.ncf import NCF
from uibrec.models.sml import SML

MODELS: dict[str, type[Recommender]] = {}


def register_model(name: str, cls: type[Recommender]) -> type[Recommender]:
    MODELS[name] = cls
    return cls


register_model("mf", MF)
register_model("ncf", NCF)
register_model("sml", SML)
register_model("lightgcn", LightGCN)


def get_model_class(name: str) -> type[Recommender]:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


__all__ = ["MODELS", "MF", "NCF", "SML", "BoundaryHead", "LightGCN", "Recommender",
           "get_model_class", "register_model"]
