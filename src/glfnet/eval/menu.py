"""A menu of recipes for nested selection (``glfnet tune``), read from YAML and checked whole
before anything runs::

    recipes:
      - name: glfnet-default
        model: glfnet_t
      - name: ststnet
        model: ststnet
      - name: glfnet+ststnet
        average: [glfnet-default, ststnet]

A recipe is a ``name`` and any training options of :class:`~glfnet.config.Config` (unnamed
options take the base configuration's: the defaults, or the command's ``--config`` file); an
optional ``description`` says why it is on the menu. A recipe with ``average`` instead lists
trained recipes of the same menu whose class probabilities it averages: it costs no training
of its own while choosing (the parts' inner predictions are reused), and its final model is its
parts' models. Where and how training runs (device, workers, seeds, bfloat16) is the command's,
shared by every recipe. Each recipe's training cost (:func:`training_cost`) breaks near-ties.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from glfnet import removed
from glfnet.config import CONFIG_KEYS, Config
from glfnet.errors import ConfigError

# options that say where and how a run happens, not what a recipe trains: the command's
NOT_RECIPE = (
    "seeds",
    "protocol",
    "jobs",
    "oracle",
    "device",
    "amp",
    "fold_batch",
    "backend",
    "ray_address",
    "save_checkpoints",
    "report",
)
RECIPE_KEYS = tuple(k for k in CONFIG_KEYS if k not in NOT_RECIPE)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")  # also a folder name


@dataclass(frozen=True)
class Recipe:
    """One menu entry: a trained recipe (``config``) or an average of trained ones."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)  # as written, for the record
    config: Config | None = None  # None for an average
    average: tuple[str, ...] = ()
    description: str = ""

    @property
    def trained(self) -> bool:
        return not self.average

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.average:
            out["average"] = list(self.average)
        return {**out, **self.options}


@dataclass
class Menu:
    """The recipes in menu order (the order breaks exact ties), and where they came from."""

    recipes: list[Recipe]
    source: str = ""

    def __getitem__(self, name: str) -> Recipe:
        return next(r for r in self.recipes if r.name == name)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.recipes]

    def trained(self) -> list[Recipe]:
        """The recipes that train networks (averages excluded), in menu order."""
        return [r for r in self.recipes if r.trained]

    def parts(self, name: str) -> list[Recipe]:
        """The trained recipes behind ``name``: itself, or the recipes it averages."""
        r = self[name]
        return [self[p] for p in r.average] if r.average else [r]

    def to_dict(self) -> dict[str, Any]:
        return {"recipes": [r.to_dict() for r in self.recipes]}


def load_menu(path: str | Path, base: Config) -> Menu:
    """Read and check the menu at ``path``; recipes derive from ``base``. ConfigError naming
    the file, the recipe and the key for anything wrong."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"menu file {p} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"menu file {p} cannot be read ({e})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"menu file {p} is not valid YAML: {e}") from None
    return parse_menu(data, base, str(p))


def parse_menu(data: Any, base: Config, source: str = "the menu") -> Menu:
    """A :class:`Menu` from the parsed YAML ``data`` (see the module docstring)."""
    where = f"menu {source}"
    if not isinstance(data, dict) or set(data) - {"recipes", "description"}:
        extra = sorted(set(data) - {"recipes", "description"}) if isinstance(data, dict) else []
        raise ConfigError(
            f"{where}: expected a mapping with a `recipes` list"
            + (f"; unknown key(s) {', '.join(map(str, extra))}" if extra else "")
            + " (see `glfnet tune --help`)"
        )
    items = data.get("recipes")
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: `recipes` must be a non-empty list of recipes")
    recipes: list[Recipe] = []
    for i, item in enumerate(items, 1):
        recipes.append(_recipe(item, i, base, where, [r.name for r in recipes]))
    trained = {r.name for r in recipes if r.trained}
    for r in recipes:
        for part in r.average:
            if part not in trained:
                raise ConfigError(
                    f"{where}, recipe {r.name!r}: `average` names {part!r}, which is not a trained "
                    f"recipe of this menu; choose from {', '.join(sorted(trained)) or 'none'}"
                )
    if not trained:
        raise ConfigError(f"{where}: no recipe trains a network (only averages)")
    return Menu(recipes, source)


def _recipe(item: Any, i: int, base: Config, where: str, seen: list[str]) -> Recipe:
    if not isinstance(item, dict):
        raise ConfigError(f"{where}: recipe {i} must be a mapping with a `name`, got {item!r}")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"{where}: recipe {i} needs a `name` of letters, digits and . _ + - "
            f"(at most 64, also a folder name), got {name!r}"
        )
    if name in seen:
        raise ConfigError(f"{where}: recipe name {name!r} appears twice; names must be unique")
    at = f"{where}, recipe {name!r}"
    description = item.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{at}: `description` must be text")
    options = {k: v for k, v in item.items() if k not in ("name", "description")}
    if "average" in options:
        parts = options.pop("average")
        if options:
            raise ConfigError(
                f"{at}: an `average` recipe takes no training options (it has "
                f"{', '.join(sorted(options))}); put them in the recipes it averages"
            )
        if not isinstance(parts, list) or len(parts) < 2 or len(set(map(str, parts))) != len(parts):
            raise ConfigError(f"{at}: `average` must list two or more different recipe names, got {parts!r}")
        return Recipe(name, {}, None, tuple(str(p) for p in parts), description)
    options = removed.config_options(options, at)
    for key, value in options.items():
        _check_key(at, key, value)
    try:
        cfg = base.replace(**options).validate()
    except ConfigError as e:
        raise ConfigError(f"{at}: {_as_keys(str(e))}") from None
    return Recipe(name, dict(options), cfg, (), description)


def _as_keys(message: str) -> str:
    """Config's message with its `names` quoted as menu keys ('epochs'), since the command
    line would otherwise show them as flags (--epochs) that a menu does not have."""
    return re.sub(r"`([^`]+)`", r"'\1'", message)


def _check_key(at: str, key: str, value: Any) -> None:
    """A known recipe key holding a value of the field's type."""
    if key in NOT_RECIPE:
        raise ConfigError(
            f"{at}: '{key}' is not a recipe option (it says where or how the run happens, the "
            "same for every recipe): give it to the command instead"
        )
    if key not in RECIPE_KEYS:
        raise ConfigError(f"{at}: unknown option '{key}'; recipe options are {', '.join(RECIPE_KEYS)}")
    expected, ok = _field_type(key)
    if not ok(value):
        raise ConfigError(f"{at}: '{key}' expects {expected}, got {value!r}")


def _field_type(key: str) -> tuple[str, Any]:
    """(what field ``key`` takes in words, a test of a value) from Config's annotations."""
    hint = typing.get_type_hints(Config)[key]
    args = typing.get_args(hint)
    none_ok = type(None) in args
    inner = [a for a in args if a is not type(None)] if none_ok else [hint]
    base = inner[0] if len(inner) == 1 else hint

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    tests: dict[Any, tuple[str, Any]] = {
        bool: ("true or false", lambda v: isinstance(v, bool)),
        int: ("a whole number", is_int),
        float: ("a number", lambda v: is_int(v) or isinstance(v, float)),
        str: ("text", lambda v: isinstance(v, str)),
        dict: ("a mapping", lambda v: isinstance(v, dict)),
    }
    if typing.get_origin(base) is typing.Literal:
        words, test = "one of " + " | ".join(map(str, typing.get_args(base))), lambda v: isinstance(v, str)
    else:
        words, test = tests.get(base, ("a value", lambda v: True))
    if none_ok:
        return f"{words} or null", lambda v: v is None or test(v)
    return words, test


def training_cost(cfg: Config) -> float:
    """What training one fold with ``cfg`` costs, in GFLOP per training sample: networks x
    epochs x one forward and backward pass of one sample (counted by PyTorch's FLOP counter
    at the configured input size). A machine-independent figure, so the near-tie rule gives
    the same choice everywhere."""
    import json

    args = json.dumps(cfg.model_args, sort_keys=True)
    return cfg.ensemble * cfg.epochs * _step_gflop(cfg.model, args, cfg.input_size)


@lru_cache(maxsize=32)
def _step_gflop(model: str, args_json: str, size: int | None) -> float:
    import json

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from glfnet.models import create_model, model_defaults

    side = int(size or model_defaults(model)["input_size"])
    with torch.random.fork_rng(devices=[]):
        net = create_model(model, **{"img_size": side, **json.loads(args_json)}).train()
        x = torch.randn(2, 3, side, side)  # two samples: BatchNorm needs a batch
        with FlopCounterMode(display=False) as counter:
            net(x).sum().backward()
    return counter.get_total_flops() / 2 / 1e9
