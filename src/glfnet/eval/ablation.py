"""GLFNet's ablation set as configurations: one leak-free run per variant, then a comparison.

Variants (each derived from a base configuration; ``glfnet ablate`` runs each in
``OUT/<variant>/``):

    full       GLFNet as configured (the default preset unless the configuration names another
               GLFNet preset)
    no-local   model_args local_branch: false
    no-global  model_args global_branch: false
    concat     model_args fusion: concat (instead of the adaptive feature fusion)
    sum        model_args fusion: sum (element-wise sum of the two branches)
    ce-loss    loss: ce (instead of the class-balanced loss)
    ststnet    the STSTNet baseline, same training settings
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from glfnet.config import Config
from glfnet.errors import ConfigError


@dataclass(frozen=True)
class Variant:
    """How a variant differs from the base: another model (None: the base GLFNet preset),
    model options changed, other configuration fields changed."""

    model: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, Any] = field(default_factory=dict)


VARIANTS: dict[str, Variant] = {
    "full": Variant(),
    "no-local": Variant(model_args={"local_branch": False}),
    "no-global": Variant(model_args={"global_branch": False}),
    "concat": Variant(model_args={"fusion": "concat"}),
    "sum": Variant(model_args={"fusion": "sum"}),
    "ce-loss": Variant(changes={"loss": "ce"}),
    "ststnet": Variant(model="ststnet"),
}


def glfnet_preset(base: Config) -> str:
    """The GLFNet preset the variants ablate: the base's model when it is a GLFNet preset,
    else the default model."""
    return base.model if base.model.startswith("glfnet") else Config.model


def variant_configs(base: Config, only: Sequence[str] | None = None) -> dict[str, Config]:
    """{variant name: validated Config} derived from ``base``, in the order of
    :data:`VARIANTS`; ``only`` keeps a subset."""
    names = list(VARIANTS)
    if only:
        unknown = [n for n in only if n not in VARIANTS]
        if unknown:
            raise ConfigError(
                f"`only`: unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}"
            )
        names = [n for n in VARIANTS if n in only]
    glf = glfnet_preset(base)
    out = {}
    for name in names:
        v = VARIANTS[name]
        if v.model is None:
            cfg = base.replace(model=glf, model_args={**base.model_args, **v.model_args}, **v.changes)
        else:
            cfg = base.replace(model=v.model, model_args={}, input_size=None, **v.changes)
        out[name] = cfg.validate()
    return out
