"""The options several commands share, each declared once with one help text: `glfnet loso`,
`ablate`, `train`, `tune` and `demo` (and `inspect`'s ``--labels``) take them from here, so the
same flag reads the same in every command's help (tests/test_cli_contract.py checks it).

A command writes ``epochs: Epochs = None``; ``None`` means "not given": the configuration's
value (``--config FILE``, else :class:`glfnet.config.Config`'s default, which the help shows).
:func:`build` turns the options as typer hands them over into a checked
:class:`~glfnet.config.Config`. ``--out`` means a run directory in loso, ablate and tune
(:func:`run_out`, whose default folder name differs by command), a model directory in train and
the demo's folder in demo; ``--seed`` is train's training seed and demo's data seed: those two
are declared by their commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from glfnet.cli.messages import warn
from glfnet.config import Backend, Config, Device, Loss, Protocol
from glfnet.errors import ConfigError

# placeholders ({models}, {model_options}) are filled when help is shown (cli/contract.py)
MODEL_HELP = "Model preset: {models}."
MODEL_ARG_HELP = (
    "Model option KEY=VALUE, repeatable, e.g. branch_width=32; the default model's switches: "
    "{model_options}. A wrong key lists all the model's options."
)

# ---------------------------------------------------------------------------- input
Data = Annotated[
    Path,
    typer.Argument(
        help="Flow set: a `glfnet prepare` cache, a folder of '<subject>_<clip> .png' + label CSV, "
        "or a per-subject LOSO tree.",
        show_default=False,
    ),
]
Labels = Annotated[
    Path | None,
    typer.Option(
        "--labels",
        help="Label CSV for a flat folder (HTNet header or headerless MEGC2019 ground truth).",
        show_default="the one CSV inside the folder",
    ),
]
SkipBad = Annotated[
    bool, typer.Option("--skip-bad", help="Exclude (and list) bad samples instead of stopping.")
]
ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="YAML file of options (keys as in a run's config.yaml); flags win.",
    ),
]

# ---------------------------------------------------------------------------- training
Model = Annotated[str | None, typer.Option("--model", help=MODEL_HELP, show_default=Config.model)]
ModelArg = Annotated[list[str] | None, typer.Option("--model-arg", help=MODEL_ARG_HELP)]
Epochs = Annotated[
    int | None,
    typer.Option(
        "--epochs",
        help="Training epochs of each network: a fixed schedule, never chosen on test data.",
        show_default=str(Config.epochs),
    ),
]
BatchSize = Annotated[
    int | None, typer.Option("--batch-size", help="Training batch size.", show_default=str(Config.batch_size))
]
Lr = Annotated[
    float | None,
    typer.Option("--lr", help="Peak learning rate (AdamW, warm-up + cosine).", show_default=f"{Config.lr:g}"),
]
LossOption = Annotated[
    Loss | None,
    typer.Option(
        "--loss", help="cb: class-balanced (the paper's); ce: cross-entropy.", show_default=Config.loss
    ),
]
ValSubjects = Annotated[
    float | None,
    typer.Option(
        "--val-subjects",
        help="Early stopping on this fraction of *training* subjects (0 = off).",
        show_default=f"{Config.val_subjects:g}",
    ),
]
Ensemble = Annotated[
    int | None,
    typer.Option(
        "--ensemble",
        help="Networks per model, trained from different seeds, their probabilities averaged (cost x K).",
        show_default=str(Config.ensemble),
    ),
]

# ---------------------------------------------------------------------------- where it trains
DeviceOption = Annotated[
    Device | None, typer.Option("--device", help="Where to train.", show_default=Config.device)
]
Amp = Annotated[
    bool | None,
    typer.Option(
        "--amp/--no-amp",
        help="bfloat16 autocast while training: cuda, or a CPU with AVX-512 BF16/AMX "
        "(faster for glfnet_s and glfnet_t there; slower for ststnet).",
        show_default="amp" if Config.amp else "no-amp",
    ),
]
FoldBatch = Annotated[
    int | None,
    typer.Option(
        "--fold-batch",
        help="Folds (in train: ensemble members) trained together as one batched model; 1 = one at "
        "a time. 0: 1 on CPU (measured fastest there), 8 on cuda (not yet timed). Dropout draws "
        "differ from one-at-a-time training, so scores agree within seed noise (docs/engine.md).",
        show_default=str(Config.fold_batch),
    ),
]
Jobs = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        help="Worker processes at once on CPU, each single-threaded (0 = one per core). Results do not "
        "depend on it.",
        show_default=str(Config.jobs),
    ),
]
BackendOption = Annotated[
    Backend | None,
    typer.Option(
        "--backend",
        help="Where folds train: local (this machine) or ray (a local Ray runtime, or the cluster at "
        "--ray-address). Same results either way; a run resumes across backends (docs/engine.md).",
        show_default=Config.backend,
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="Address of a running Ray cluster (e.g. auto, or ray://HEAD:10001) for --backend ray.",
        show_default="a new local runtime",
    ),
]

# ---------------------------------------------------------------------------- the run
Seeds = Annotated[
    str | None,
    typer.Option(
        "--seeds",
        help="Seeds, e.g. 0,1,2,3,4 or 0-4: results are mean ± std over them (several tell a "
        "difference from seed noise).",
        show_default=",".join(map(str, Config().seeds)),
    ),
]
ProtocolOption = Annotated[
    Protocol | None,
    typer.Option(
        "--protocol",
        help="loso: leave one subject out; lodo: leave one database out.",
        show_default=Config.protocol,
    ),
]
Oracle = Annotated[
    bool,
    typer.Option(
        "--oracle",
        help="Also score each subject's best epoch on its own test data (optimistic: labelled, kept "
        "apart, never compared).",
    ),
]
SaveCheckpoints = Annotated[
    bool, typer.Option("--save-checkpoints", help="Keep each fold's model as safetensors.")
]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace what --out holds where it would be refused: an earlier run with other "
        "settings (train: an existing model).",
    ),
]
NoReport = Annotated[bool, typer.Option("--no-report", help="Skip report.md/report.html.")]
Quiet = Annotated[bool, typer.Option("--quiet", help="No progress bar, per-fold or per-epoch lines.")]
Json = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print the results as one JSON object on stdout; everything else goes to stderr.",
    ),
]


def run_out(default: str) -> Any:
    """``--out`` of a command that writes a run directory, whose default is ``default``."""
    return typer.Option(
        "--out",
        help="Where the run's results go; re-running the same command resumes it.",
        show_default=default,
    )


# ---------------------------------------------------------------------------- parsing


def parse_int_list(text: str, what: str = "seeds") -> list[int]:
    """``"0,1,2"`` or ``"0-4"`` -> list of ints; a clear ConfigError otherwise."""
    out: list[int] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        try:
            if "-" in part[1:]:
                a, b = part.split("-", 1) if not part.startswith("-") else (part, "")
                lo, hi = int(a), int(b)
                if hi < lo:
                    raise ConfigError(f"--{what}: {part} is a reversed range; write {hi}-{lo}")
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ConfigError(f"--{what}: {text!r} is not a list of integers like 0,1,2 or 0-4") from None
    if not out:
        raise ConfigError(f"--{what}: give at least one integer, e.g. 0,1,2")
    return out


def parse_model_args(items: list[str] | None) -> dict | None:
    """``["fusion=concat", "local_branch=false"]`` -> {"fusion": "concat", "local_branch": False}."""
    import yaml

    if not items:
        return None
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--model-arg {item!r}: write KEY=VALUE, e.g. fusion=concat")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


# switches that are off unless given: off means "the configuration's", not "no"
_UNLESS_GIVEN = ("oracle", "save_checkpoints")


def build(
    config: Path | None,
    *,
    seeds: str | None = None,
    model_arg: list[str] | None = None,
    no_report: bool = False,
    **flags: Any,
) -> Config:
    """The checked configuration: defaults < ``--config`` < the options as typer hands them
    over (``None``: not given; ``seeds`` as text, ``model_arg`` as KEY=VALUE items). Warns
    when ``amp`` asks for bfloat16 on a CPU that only emulates it."""
    from glfnet.config import build_config, cpu_has_bf16

    for name in _UNLESS_GIVEN:
        if flags.get(name) is False:
            flags[name] = None
    cfg = build_config(
        config,
        seeds=parse_int_list(seeds) if seeds else None,
        model_args=parse_model_args(model_arg),
        report=False if no_report else None,
        **flags,
    )
    if cfg.amp and cfg.device == "cpu" and not cpu_has_bf16():
        warn(
            "`amp` on a CPU without native bfloat16 (AVX-512 BF16 or AMX): autocast runs "
            "emulated there, expect it slower than float32; `amp=False` trains in float32."
        )
    return cfg
