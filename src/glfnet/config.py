"""Run configuration: one dataclass, mirrored by YAML files and command-line flags.

Precedence: defaults < ``--config FILE`` < flags. The resolved configuration is written to
every run directory as ``config.yaml``; feeding that file back with ``--config`` reproduces
the run. Defaults were chosen on the SMIC development set (docs/training.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from glfnet.errors import ConfigError


@dataclass
class Config:
    # model
    model: str = "glfnet_t"
    model_args: dict = field(default_factory=dict)
    input_size: int | None = None  # None: the preset's size (28 glfnet_t/glfnet_s/ststnet, 224 glfnet)
    # protocol
    protocol: str = "loso"  # loso | lodo
    seeds: list[int] = field(default_factory=lambda: [0])
    # optimisation
    epochs: int = 30
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_epochs: int = 2
    # loss
    loss: str = "cb"  # cb (class-balanced) | ce
    cb_beta: float = 0.999
    base_loss: str = "ce"  # ce | focal
    focal_gamma: float = 2.0
    label_smoothing: float = 0.1
    # input and augmentation
    # signed: per-image unit range, zero motion kept at zero | minmax: per-image min-max to
    # [0, 1] (the release encoding) | global: raw magnitudes; then fold standardisation
    input_norm: str = "signed"
    hflip: float = 0.5  # probability
    rotate: float = 10.0  # max degrees
    scale: float = 0.05  # max relative zoom
    translate: float = 0.05  # max shift, fraction of the image size
    mixup: float = 0.0  # Beta(a, a) mixing of training pairs; 0 = off
    # variance reduction (fixed before any test subject is seen)
    ensemble: int = 1  # networks per fold, probabilities averaged (seed ensemble)
    tta: bool = False  # test-time flip: average the prediction of the image and its mirror
    db_norm: bool = False  # per-database input statistics (database = metadata, not a label)
    swa_epochs: int = 0  # >0: the last N epochs at a constant learning rate, weights averaged
    swa_lr: float = 0.25  # that constant rate, as a fraction of lr
    # model selection (never on the test subject)
    val_subjects: float = 0.0  # >0: early stopping on this fraction of *training* subjects
    # run
    jobs: int = 0  # fold workers on CPU; 0 = one per core (results do not depend on it)
    oracle: bool = False
    device: str = "cpu"  # cpu | cuda
    amp: bool = False  # bfloat16 autocast on cuda
    save_checkpoints: bool = False
    report: bool = True

    # fields that do not change a fold's honest predictions (resume may differ in these)
    RUN_ONLY = ("seeds", "jobs", "oracle", "save_checkpoints", "report")

    def validate(self) -> "Config":
        from glfnet.models import list_models

        def bad(name, value, allowed):
            raise ConfigError(f"{name}: {value!r} is not allowed; choose {allowed}")

        if self.model not in list_models():
            bad("model", self.model, " | ".join(list_models()))
        if self.protocol not in ("loso", "lodo"):
            bad("protocol", self.protocol, "loso | lodo")
        if self.loss not in ("cb", "ce"):
            bad("loss", self.loss, "cb | ce")
        if self.base_loss not in ("ce", "focal"):
            bad("base_loss", self.base_loss, "ce | focal")
        if self.input_norm not in ("signed", "minmax", "global"):
            bad("input_norm", self.input_norm, "signed | minmax | global")
        if self.device not in ("cpu", "cuda"):
            bad("device", self.device, "cpu | cuda")
        if self.jobs < 0:
            raise ConfigError(f"jobs must be 0 (one per CPU core) or more, got {self.jobs}")
        for name, lo in (("epochs", 1), ("batch_size", 2)):
            if int(getattr(self, name)) < lo:
                raise ConfigError(f"{name} must be at least {lo}, got {getattr(self, name)}")
        if int(self.ensemble) < 1:
            raise ConfigError(f"ensemble must be at least 1 (networks per fold), got {self.ensemble}")
        if not 0 <= int(self.swa_epochs) < int(self.epochs):
            raise ConfigError(f"swa_epochs must be 0 (off) or fewer than epochs ({self.epochs}), "
                              f"got {self.swa_epochs}")
        if self.swa_epochs and self.val_subjects > 0:
            raise ConfigError("swa_epochs averages the last epochs' weights and val_subjects picks one "
                              "epoch: use one of them")
        if not 0 < self.swa_lr <= 1:
            raise ConfigError(f"swa_lr is a fraction of lr in (0, 1], got {self.swa_lr}")
        if self.mixup < 0:
            raise ConfigError(f"mixup is a Beta(a, a) parameter, 0 (off) or more, got {self.mixup}")
        if not 0 < self.cb_beta < 1:
            raise ConfigError(f"cb_beta must be in (0, 1), got {self.cb_beta}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.val_subjects < 1:
            raise ConfigError(f"val_subjects is a fraction of training subjects in [0, 1), got {self.val_subjects}")
        if not self.seeds:
            raise ConfigError("give at least one seed")
        return self

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> dict:
        """What must match for finished folds to be reused on resume."""
        return {k: v for k, v in self.to_dict().items() if k not in self.RUN_ONLY}

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


CONFIG_KEYS = tuple(f.name for f in fields(Config))


def load_yaml(path: str | Path) -> dict:
    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file {p} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {p} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of option: value")
    unknown = sorted(set(data) - set(CONFIG_KEYS) - {"data", "labels", "data_digest", "glfnet_version"})
    if unknown:
        raise ConfigError(f"config file {p}: unknown option(s) {', '.join(unknown)}; "
                          f"valid options are {', '.join(CONFIG_KEYS)}")
    return {k: v for k, v in data.items() if k in CONFIG_KEYS}


def build_config(file: str | Path | None = None, **flags) -> Config:
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
    data = dict(extra or {})
    data.update(cfg.to_dict())
    return yaml.safe_dump(data, sort_keys=False)
