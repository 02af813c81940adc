"""Run configuration: one dataclass, mirrored by YAML files and command-line flags.

Precedence: defaults < ``--config FILE`` < flags. The resolved configuration is written to
every run directory as ``config.yaml``; feeding that file back with ``--config`` reproduces
the run. Defaults were chosen on the SMIC development set (docs/training.md).

Fields with fixed choices are typed with the ``Literal`` aliases below (``Protocol``,
``Loss``, ``InputNorm``, ``Device``): validation and the command line read
the allowed values from them. Error messages name fields in backticks (```epochs```).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import asdict, dataclass, field, fields
from functools import cache, lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from glfnet import removed
from glfnet.errors import ConfigError

# Allowed values, spelled once: validation, the losses and the command line's help and
# parsing all read them (``typing.get_args``).
Protocol = Literal["loso", "lodo"]  # leave one subject / one database out
Loss = Literal["cb", "ce"]  # class-balanced (the paper's) | equal weights
# signed: per-image unit range, zero motion kept at zero | minmax: per-image min-max to
# [0, 1] (the release encoding) | global: raw magnitudes; then fold standardisation
InputNorm = Literal["signed", "minmax", "global"]
Device = Literal["cpu", "cuda"]
Backend = Literal["local", "ray"]  # where units of work run: this machine | a Ray runtime or cluster
# how `glfnet tune` picks a recipe from inner scores: the cheapest within one standard error
# of the best | the best
Rule = Literal["one-se", "best"]


@dataclass
class Config:
    """The options of a run; :meth:`validate` checks them all before anything starts."""

    # model
    model: str = "glfnet_t"
    model_args: dict = field(default_factory=dict)
    input_size: int | None = None  # None: the preset's size (28 glfnet_t/glfnet_s/ststnet, 224 glfnet)
    # protocol
    protocol: Protocol = "loso"
    seeds: list[int] = field(default_factory=lambda: [0])
    # optimisation
    epochs: int = 35  # per network: two networks per fold (``ensemble``) of 35 epochs each
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.5  # decoupled (AdamW): shrinks weights by lr x 0.5 per step
    warmup_epochs: int = 2
    # loss
    loss: Loss = "cb"
    cb_beta: float = 0.999
    label_smoothing: float = 0.1
    # input and augmentation
    input_norm: InputNorm = "signed"
    hflip: float = 0.5  # probability
    rotate: float = 10.0  # max degrees
    scale: float = 0.05  # max relative zoom
    translate: float = 0.05  # max shift, fraction of the image size
    # variance reduction (fixed before any test subject is seen)
    ensemble: int = 2  # networks per fold, probabilities averaged (seed ensemble)
    db_norm: bool = False  # per-database input statistics (database = metadata, not a label)
    cb_per_database: bool = False  # class-balanced weights counted within each database
    bn_per_database: bool = False  # BatchNorm statistics per database after training (AdaBN)
    bn_refresh: bool = True  # recompute BatchNorm statistics after training (training rows, no augmentation)
    # model selection (never on the test subject)
    val_subjects: float = 0.0  # >0: early stopping on this fraction of *training* subjects
    # run
    jobs: int = 0  # fold workers on CPU; 0 = one per core (results do not depend on it)
    oracle: bool = False
    device: Device = "cpu"
    amp: bool = False  # bfloat16 autocast while training (cuda, or a CPU with bf16 instructions)
    fold_batch: int = 0  # folds (or ensemble members) trained as one batched model; 0 = auto
    backend: Backend = "local"
    ray_address: str | None = None  # an existing Ray cluster; None = a local Ray runtime
    save_checkpoints: bool = False
    report: bool = True

    # fields that do not change a fold's honest predictions (resume may differ in these)
    RUN_ONLY = ("seeds", "jobs", "oracle", "save_checkpoints", "report", "backend", "ray_address")

    def validate(self) -> Config:
        """Check every field before anything is written or started: fixed choices, ranges,
        the device, and the model options (the model is built once, on CPU). Returns self;
        raises ConfigError naming the parameter in backticks."""
        from glfnet.models.registry import check_model_args, list_models

        for name, allowed in _choice_fields().items():
            _check_choice(name, getattr(self, name), allowed)
        _check_choice("model", self.model, tuple(list_models()))
        self._check_ranges()
        _check_backend(self.backend, self.ray_address)
        check_model_args(self.model, self.model_args, self.input_size)
        check_device(self.device)
        if self.amp and int(self.fold_batch) > 1 and not autocast_reaches_batched_convs(self.device):
            import torch

            raise ConfigError(
                f"`amp` cannot be combined with `fold_batch` {self.fold_batch} on {self.device}: the "
                f"batched engine runs its networks under torch.func.vmap, where PyTorch "
                f"{torch.__version__} leaves convolutions in float32 while autocast casts the rest "
                "(GLFNet fails on the mixed types). Use `fold_batch` 1 with `amp`, or leave `amp` off."
            )
        return self

    def _check_ranges(self) -> None:
        if self.jobs < 0:
            raise ConfigError(f"`jobs` must be 0 (one per CPU core) or more, got {self.jobs}")
        for name, lo in (("epochs", 1), ("batch_size", 2)):
            if int(getattr(self, name)) < lo:
                raise ConfigError(f"`{name}` must be at least {lo}, got {getattr(self, name)}")
        if int(self.fold_batch) < 0:
            raise ConfigError(
                f"`fold_batch` must be 0 (auto) or a number of folds trained together, got {self.fold_batch}"
            )
        if int(self.ensemble) < 1:
            raise ConfigError(f"`ensemble` must be at least 1 (networks per fold), got {self.ensemble}")
        if not 0 < self.cb_beta < 1:
            raise ConfigError(f"`cb_beta` must be in (0, 1), got {self.cb_beta}")
        if self.lr <= 0:
            raise ConfigError(f"`lr` must be positive, got {self.lr}")
        if not 0 <= self.val_subjects < 1:
            raise ConfigError(
                f"`val_subjects` is a fraction of training subjects in [0, 1), got {self.val_subjects}"
            )
        if not self.seeds:
            raise ConfigError("`seeds`: give at least one seed")

    def fold_batch_size(self) -> int:
        """Folds (or ensemble members) per batched model: ``fold_batch``, or for 0 (auto) 1 on
        CPU (measured: batched convolutions become grouped ones, slower there than one model at
        a time; docs/engine.md) and 8 on CUDA (where one small model per step leaves the GPU
        idle; not yet timed: ``benchmarks/bench_gpu.py`` measures it), or 1 there with ``amp``
        where autocast does not reach batched convolutions
        (:func:`autocast_reaches_batched_convs`)."""
        if self.fold_batch:
            return int(self.fold_batch)
        if self.device != "cuda":
            return 1
        # bfloat16 autocast needs one network at a time where vmap keeps it from convolutions
        return 8 if not self.amp or autocast_reaches_batched_convs("cuda") else 1

    @staticmethod
    def choices(name: str) -> tuple:
        """The allowed values of field ``name`` (typed with a ``Literal``); () otherwise."""
        return _choice_fields().get(name, ())

    def to_dict(self) -> dict:
        """The fields as a plain dict (what config.yaml holds)."""
        return asdict(self)

    def fingerprint(self) -> dict:
        """What must match for finished folds to be reused on resume."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RUN_ONLY}

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)


CONFIG_KEYS = tuple(f.name for f in fields(Config))
# what a run directory's config.yaml records beside the options (read back, not options)
# (``tune``: a ``glfnet tune`` run's menu and settings)
RUN_FACTS = ("data", "labels", "data_digest", "model_revision", "glfnet_version", "tune")


@lru_cache(maxsize=1)
def _choice_fields() -> dict[str, tuple]:
    """{field: allowed values} for the fields typed with a ``Literal`` alias."""
    hints = typing.get_type_hints(Config)
    return {
        f.name: typing.get_args(hints[f.name])
        for f in fields(Config)
        if typing.get_origin(hints[f.name]) is Literal
    }


def _check_choice(name: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"`{name}`: {value!r} is not allowed; choose {' | '.join(allowed)}")


def _check_backend(backend: str, ray_address: str | None) -> None:
    """Ray installed for ``backend`` ray (looked up, not imported: importing Ray is slow); no
    ``ray_address`` without it."""
    if backend == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            raise ConfigError("`backend` ray needs Ray: pip install 'glfnet[ray]'")
    elif ray_address:
        raise ConfigError(
            f"`ray_address` {ray_address} names a Ray cluster, but `backend` is {backend}: "
            "add `backend=ray`, or leave out `ray_address`"
        )


def check_device(device: str) -> None:
    """A ConfigError unless ``device`` is ``cpu``, or ``cuda`` with a GPU PyTorch sees."""
    _check_choice("device", device, typing.get_args(Device))
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(
                "`device` cuda was asked for but PyTorch sees no CUDA GPU here; use `device` cpu."
            )


@cache
def autocast_reaches_batched_convs(device: str) -> bool:
    """Whether bfloat16 autocast casts a convolution run inside ``torch.func.vmap`` on
    ``device``, as the fold-batched engine runs its networks (docs/engine.md). In PyTorch 2.13
    on the CPU it does not: vmap's batching rule for convolutions runs below autocast, so they
    stay float32 while matrix products are cast, and GLFNet's attention then hands a bfloat16
    map to a float32 convolution. Probed with a tiny convolution, not assumed, so a PyTorch or
    a device where it works is used as it is."""
    import torch
    import torch.nn.functional as F
    from torch.func import vmap

    x, w = torch.zeros(2, 1, 1, 2, 2, device=device), torch.zeros(2, 1, 1, 1, 1, device=device)
    with torch.autocast(device, dtype=torch.bfloat16):
        return bool(vmap(F.conv2d)(x, w).dtype == torch.bfloat16)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), as PyTorch reports
    it. Without, ``amp`` on the CPU still runs, on emulated bfloat16 arithmetic: expect it
    slower, not faster; a fact to warn about, not a configuration error."""
    import torch

    # torch.cpu's (private) feature queries; one a PyTorch version lacks counts as "no"
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def load_yaml(path: str | Path) -> dict:
    """The options in a YAML configuration file (a run's config.yaml reads back; options
    removed since are dropped at their no-op value, refused at any other:
    :mod:`glfnet.removed`)."""
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of option: value")
    data = removed.config_options(data, f"config file {p}")
    unknown = sorted(set(data) - set(CONFIG_KEYS) - set(RUN_FACTS))
    if unknown:
        raise ConfigError(
            f"config file {p}: unknown option(s) {', '.join(unknown)}; "
            f"valid options are {', '.join(CONFIG_KEYS)}"
        )
    return {k: v for k, v in data.items() if k in CONFIG_KEYS}


def build_config(file: str | Path | None = None, **flags: Any) -> Config:
    """Defaults < YAML file < flags (flags given as None are 'not set')."""
    values = load_yaml(file) if file else {}
    values.update({k: v for k, v in flags.items() if v is not None})
    try:
        cfg = Config(**values)
    except TypeError as e:
        raise ConfigError(f"bad configuration: {e}") from None
    if isinstance(cfg.seeds, int):
        cfg.seeds = [cfg.seeds]
    cfg.seeds = [int(s) for s in cfg.seeds]
    return cfg.validate()


def dump_yaml(cfg: Config, extra: dict | None = None) -> str:
    """``cfg`` as YAML, after the ``extra`` keys (data source, digest, version)."""
    data = dict(extra or {})
    data.update(cfg.to_dict())
    return yaml.safe_dump(data, sort_keys=False)
