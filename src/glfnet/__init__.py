"""glfnet: GLFNet and leak-free evaluation for micro-expression recognition.

Implements Zhang, Yao, Yang, Yin, "GLFNet: Attention Mechanism-Based Global-Local Feature
Fusion Network for Micro-Expression Recognition", Entropy 2025, 27(10):1023,
doi:10.3390/e27101023, and the data handling around it.

Layout: ``data`` (flow sets, raw readers, protocols) -> ``preprocess`` (face, flow, cache,
media reading) -> ``models`` -> ``train`` (training, model directories) -> ``eval`` and,
beside it, ``infer`` (:class:`Recognizer`) -> ``report`` -> ``cli``. Shortcuts here:
:func:`create_model` and ``Recognizer`` (imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glfnet._version import __version__

__all__ = ["Recognizer", "__version__", "create_model"]

if TYPE_CHECKING:
    import torch


def create_model(name: str, num_classes: int = 3, in_chans: int = 3, **overrides: Any) -> torch.nn.Module:
    """Build a registered model (``glfnet_t``, ``glfnet_s``, ``glfnet``, ``ststnet``). See
    glfnet.models."""
    from glfnet.models import create_model as _create

    return _create(name, num_classes=num_classes, in_chans=in_chans, **overrides)


def __getattr__(name: str) -> object:  # lazy: importing glfnet stays cheap
    if name == "Recognizer":
        from glfnet.infer import Recognizer

        return Recognizer
    raise AttributeError(name)
