"""`glfnet predict`: class probabilities of new clips with a model from `glfnet train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from glfnet.cli.messages import console, error, flagify, warn
from glfnet.config import Device
from glfnet.errors import ConfigError, ModelFileError
from glfnet.io import json_default

if TYPE_CHECKING:
    from glfnet.infer import ClipResult, Prediction, Recognizer

MODES_HELP = (
    "give one input: --onset A.jpg --apex B.jpg (two images), --frames DIR "
    "[--onset N --apex M] (a folder of numbered frames), or --video FILE "
    "[--onset N --apex M]"
)


def _frame_number(text: str | None, what: str, unit: str) -> int | None:
    """An --onset/--apex value given with --frames/--video: a frame number."""
    if text is None:
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(
            f"--{what} {text!r}: with {unit} give a frame number (an integer); "
            "image paths go with --onset/--apex alone."
        ) from None
    if value < 0:
        raise ConfigError(f"--{what} {value}: frame numbers are not negative.")
    return value


def _mode(onset: str | None, apex: str | None, frames: list[Path] | None, video: list[Path] | None) -> str:
    """images | frames | video, from the options given (one kind of input per call)."""
    modes = [
        m
        for m, on in (
            ("images", not frames and not video and (onset or apex)),
            ("frames", bool(frames)),
            ("video", bool(video)),
        )
        if on
    ]
    if not modes:
        raise ConfigError(f"nothing to predict: {MODES_HELP}.")
    if len(modes) > 1:
        raise ConfigError(f"--frames and --video cannot be combined in one call: {MODES_HELP}.")
    if modes[0] == "images" and (onset is None or apex is None):
        raise ConfigError(
            f"--{'apex' if apex is None else 'onset'} is missing: with images give "
            "both --onset ONSET_IMAGE and --apex APEX_IMAGE (or use --frames/"
            "--video to have them picked)."
        )
    return modes[0]


def predict(
    model: Path = typer.Option(
        ..., "--model", "-m", help="Model directory from `glfnet train`.", show_default=False
    ),
    onset: str | None = typer.Option(
        None,
        "--onset",
        help="The onset image (with --apex IMAGE), or with --frames/--video the onset frame number.",
    ),
    apex: str | None = typer.Option(
        None, "--apex", help="The apex image, or with --frames/--video the apex frame number."
    ),
    frames: list[Path] | None = typer.Option(
        None,
        "--frames",
        help="Folder of numbered "
        "frames (img46.jpg ...); --onset/--apex are the "
        "numbers in the file names. Repeatable.",
    ),
    video: list[Path] | None = typer.Option(
        None,
        "--video",
        help="Video file (OpenCV/FFmpeg); --onset/--apex are 0-based frame indices. Repeatable.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object per input (one line each) instead of a table."
    ),
    align: bool | None = typer.Option(
        None,
        "--align/--no-align",
        help="--no-align: the "
        "frames are already cropped faces; skip face detection "
        "and use them as they are.",
        show_default="as the model's training data",
    ),
    device: Device = typer.Option("cpu", "--device", help="Where to run the model."),
) -> None:
    """Class probabilities of a clip, with the preprocessing the model was trained with.

    Three inputs: two images (--onset A.jpg --apex B.jpg); a folder of numbered frames
    (--frames DIR, optionally --onset N --apex M as numbered in the file names); a video
    (--video FILE, optionally --onset N --apex M as 0-based frame indices). Without onset/apex
    the onset is the first frame and the apex the frame of largest optical flow from it; the
    output says which frames were picked. A frame without a detectable face is an error unless
    --no-align says the frames are already cropped faces. With several --frames/--video, each
    input gets its result or its own error line; the exit status is 2 if any failed.
    """
    from glfnet.infer import Recognizer

    mode = _mode(onset, apex, frames, video)
    numbers = _frame_numbers(mode, onset, apex)  # checked before the model is read
    try:
        rec = Recognizer.load(model, device=device)
    except ModelFileError:
        _refuse_run_dir(model)
        raise
    if numbers is None:
        results = [_predict_pair(rec, str(onset), str(apex), align)]
    else:
        results = rec.predict_many(
            frames or video or [], *numbers, align=align, kind="frames" if mode == "frames" else "video"
        )
    _print_results(rec, mode, model, results, as_json)
    if not all(r.ok for r in results):
        raise typer.Exit(code=2)


def _refuse_run_dir(model: Path) -> None:
    """A `glfnet loso` run directory given as a model: say why it is none and what to do."""
    from glfnet.eval.rundir import RunDir

    rd = RunDir(model)
    if not rd.holds_run():
        return
    where = "its checkpoints/ hold" if rd.checkpoints_dir.is_dir() else "--save-checkpoints keeps"
    raise ModelFileError(
        f"{model} is a `glfnet loso` run directory, not a model directory: a LOSO run measures "
        f"how well the method works and keeps no model for use ({where} the network of each "
        "fold for inspection only: each saw part of the data and none records the "
        "preprocessing a prediction must repeat). Train one on all the data with `glfnet train "
        "DATA --out DIR` (the same options as the run) and give that DIR."
    )


def _frame_numbers(mode: str, onset: str | None, apex: str | None) -> tuple[int | None, int | None] | None:
    """--onset/--apex as frame numbers for --frames/--video (None for two images)."""
    from glfnet.preprocess.media import check_frame_order

    if mode == "images":
        return None
    unit = f"--{mode}"
    o, a = _frame_number(onset, "onset", unit), _frame_number(apex, "apex", unit)
    check_frame_order(o, a)
    return o, a


def _predict_pair(rec: Recognizer, onset: str, apex: str, align: bool | None) -> ClipResult:
    """Two images: one input, whose error stops the command as any other error does."""
    from glfnet.infer import ClipResult

    p = rec.predict(Path(onset), Path(apex), align=align, names=(onset, apex))
    return ClipResult(f"{onset} -> {apex}", prediction=p)


def _print_results(rec: Recognizer, mode: str, model: Path, results: list[ClipResult], as_json: bool) -> None:
    """Warnings and per-input errors on stderr; a table per input, or one JSON line each."""
    for r in results:
        for w in r.prediction.info.get("warnings", []) if r.prediction else []:
            warn(f"{r.input}: {w}")
        if r.error is not None:
            error(str(r.error))
    if not as_json:
        _print_table(rec, mode, [(r.input, r.prediction) for r in results if r.prediction])
        return
    for r in results:
        obj = r.to_dict() if r.ok else {"input": r.input, "error": flagify(str(r.error))}
        typer.echo(
            json.dumps({"input": r.input, "mode": mode, "model": str(model), **obj}, default=json_default)
        )


def _picked_line(name: str, p: Prediction) -> str | None:
    i = p.info
    if not i.get("picked"):
        return None
    which = []
    if i.get("picked_onset"):
        which.append(f"onset {i['onset']}")
    if i.get("picked_apex"):
        which.append(f"apex {i['apex']}")
    return f"{name}: picked {' and '.join(which)} ({i['rule']})"


def _print_table(rec: Recognizer, mode: str, results: list[tuple[str, Prediction]]) -> None:
    """One small table per input (class, probability, bar): fits any terminal width."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    console.print(
        f"model {escape(str(rec.path))} ({rec.config['model']['name']}, trained on "
        f"{rec.config.get('data', {}).get('n_samples', '?')} samples)",
        markup=True,
    )
    for name, p in results:
        i = p.info
        face = "not aligned" if not i.get("aligned") else ("face found" if i.get("face_found") else "no face")
        used = "" if mode == "images" else f"; frames {i['onset']} -> {i['apex']}"
        console.print(
            f"\n[bold]{escape(name)}[/bold]: [bold green]{escape(p.label)}[/bold green] "
            f"({escape(face)}{escape(used)})",
            markup=True,
        )
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        t.add_column("class", no_wrap=True)
        t.add_column("probability", justify="right", no_wrap=True)
        t.add_column("", no_wrap=True)
        for c in rec.classes:
            prob = p.probabilities[c]
            mark = " <- prediction" if c == p.label else ""
            t.add_row(
                c, f"{prob:.3f}", "#" * int(round(prob * 20)) + mark, style="bold" if c == p.label else None
            )
        console.print(t)
        line = _picked_line(name, p)
        if line:
            console.print(line, markup=False)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
