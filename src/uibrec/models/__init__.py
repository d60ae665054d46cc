"""Models: they only score. Register a new one with :func:`register_model`."""

from __future__ import annotations

from uibrec.models.base import BoundaryHead, Recommender
from uibrec.models.mf import MF

MODELS: dict[str, type[Recommender]] = {}


def register_model(name: str, cls: type[Recommender]) -> type[Recommender]:
    MODELS[name] = cls
    return cls


register_model("mf", MF)


def get_model_class(name: str) -> type[Recommender]:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


__all__ = ["MODELS", "BoundaryHead", "MF", "Recommender", "get_model_class", "register_model"]
