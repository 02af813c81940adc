"""`glfnet predict`: class probabilities of new clips with a model from `glfnet train`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from glfnet.cli.common import console, warn
from glfnet.errors import ConfigError

MODES_HELP = ("give one input: --onset A.jpg --apex B.jpg (two images), --frames DIR "
              "[--onset N --apex M] (a folder of numbered frames), or --video FILE "
              "[--onset N --apex M]")


def _frame_number(text: str | None, what: str, unit: str) -> int | None:
    if text is None:
        return None
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"--{what} {text!r}: with {unit} give a frame number (an integer); "
                          "image paths go with --onset/--apex alone.") from None
    if value < 0:
        raise ConfigError(f"--{what} {value}: frame numbers are not negative.")
    return value


def _run_frames(rec, folder: Path, onset: str | None, apex: str | None, align):
    from glfnet.predict import list_frame_files

    files, numbers = list_frame_files(folder)
    o = _frame_number(onset, "onset", "--frames")
    a = _frame_number(apex, "apex", "--frames")
    pos = {n: i for i, n in enumerate(numbers)}
    for what, v in (("onset", o), ("apex", a)):
        if v is not None and v not in pos:
            raise ConfigError(f"--{what} {v}: {folder} has no frame numbered {v}; its frames are "
                              f"numbered {numbers[0]} to {numbers[-1]} ({len(numbers)} files; "
                              "the number is the last run of digits in the file name).")
    if o is not None and a is not None and o >= a:
        raise ConfigError(f"--onset {o} is not before --apex {a}: the onset must come first.")
    p = rec.predict_frames(files, None if o is None else pos[o], None if a is None else pos[a],
                           align=align, labels=[f.name for f in files], source=str(folder))
    p.info.update(onset_frame=numbers[p.info["onset_index"]],
                  apex_frame=numbers[p.info["apex_index"]])
    return p


def _run_video(rec, video: Path, onset: str | None, apex: str | None, align):
    o = _frame_number(onset, "onset", "--video")
    a = _frame_number(apex, "apex", "--video")
    if o is not None and a is not None and o >= a:
        raise ConfigError(f"--onset {o} is not before --apex {a}: the onset must come first.")
    return rec.predict_video(video, o, a, align=align)


def predict(
    model: Path = typer.Option(..., "--model", "-m", help="Model directory from `glfnet train`.",
                               show_default=False),
    onset: Optional[str] = typer.Option(None, "--onset", help="The onset image (with --apex "
                                        "IMAGE), or with --frames/--video the onset frame "
                                        "number."),
    apex: Optional[str] = typer.Option(None, "--apex", help="The apex image, or with "
                                       "--frames/--video the apex frame number."),
    frames: Optional[List[Path]] = typer.Option(None, "--frames", help="Folder of numbered "
                                                "frames (img46.jpg ...); --onset/--apex are the "
                                                "numbers in the file names. Repeatable."),
    video: Optional[List[Path]] = typer.Option(None, "--video", help="Video file (OpenCV/FFmpeg); "
                                               "--onset/--apex are 0-based frame indices. "
                                               "Repeatable."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per input (one line "
                                 "each) instead of a table."),
    align: Optional[bool] = typer.Option(None, "--align/--no-align", help="--no-align: the "
                                         "frames are already cropped faces; skip face detection "
                                         "and use them as they are. Default: as the model's "
                                         "training data was prepared.", show_default=False),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda."),
):
    """Class probabilities of a clip, with the preprocessing the model was trained with.

    Three inputs: two images (--onset A.jpg --apex B.jpg); a folder of numbered frames
    (--frames DIR, optionally --onset N --apex M as numbered in the file names); a video
    (--video FILE, optionally --onset N --apex M as 0-based frame indices). Without onset/apex
    the onset is the first frame and the apex the frame of largest optical flow from it; the
    output says which frames were picked. A frame without a detectable face is an error unless
    --no-align says the frames are already cropped faces.
    """
    from glfnet.predict import Recognizer

    modes = [m for m, on in (("images", not frames and not video and (onset or apex)),
                             ("frames", bool(frames)), ("video", bool(video))) if on]
    if not modes:
        raise ConfigError(f"nothing to predict: {MODES_HELP}.")
    if len(modes) > 1:
        raise ConfigError(f"--frames and --video cannot be combined in one call: {MODES_HELP}.")
    mode = modes[0]
    if mode == "images" and (onset is None or apex is None):
        raise ConfigError(f"--{'apex' if apex is None else 'onset'} is missing: with images give "
                          "both --onset ONSET_IMAGE and --apex APEX_IMAGE (or use --frames/"
                          "--video to have them picked).")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: choose cpu or cuda.")
    rec = Recognizer.load(model, device=device)
    results = []
    if mode == "images":
        results.append((f"{onset} -> {apex}", rec.predict(Path(onset), Path(apex), align=align,
                                                           names=(onset, apex))))
    elif mode == "frames":
        for folder in frames:
            results.append((str(folder), _run_frames(rec, folder, onset, apex, align)))
    else:
        for v in video:
            results.append((str(v), _run_video(rec, v, onset, apex, align)))
    for name, p in results:
        for w in p.info.get("warnings", []):
            warn(f"{name}: {w}")
    if as_json:
        for name, p in results:
            typer.echo(json.dumps({"input": name, "mode": mode, "model": str(model),
                                   **p.to_dict()}, default=_json_default))
        return
    _print_table(rec, mode, results)


def _json_default(o):
    from glfnet.io import _json_default as default

    return default(o)


def _picked_line(name: str, p) -> str | None:
    i = p.info
    if not i.get("picked"):
        return None
    which = []
    if i.get("picked_onset"):
        which.append(f"onset {i['onset']}")
    if i.get("picked_apex"):
        which.append(f"apex {i['apex']}")
    return f"{name}: picked {' and '.join(which)} ({i['rule']})"


def _print_table(rec, mode: str, results) -> None:
    """One small table per input (class, probability, bar): fits any terminal width."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    console.print(f"model {escape(str(rec.path))} ({rec.config['model']['name']}, trained on "
                  f"{rec.config.get('data', {}).get('n_samples', '?')} samples)", markup=True)
    for name, p in results:
        i = p.info
        face = ("not aligned" if not i.get("aligned")
                else ("face found" if i.get("face_found") else "no face"))
        used = "" if mode == "images" else f"; frames {i['onset']} -> {i['apex']}"
        console.print(f"\n[bold]{escape(name)}[/bold]: [bold green]{escape(p.label)}[/bold green] "
                      f"({escape(face)}{escape(used)})", markup=True)
        t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        t.add_column("class", no_wrap=True)
        t.add_column("probability", justify="right", no_wrap=True)
        t.add_column("", no_wrap=True)
        for c in rec.classes:
            prob = p.probabilities[c]
            mark = " <- prediction" if c == p.label else ""
            t.add_row(c, f"{prob:.3f}", "#" * int(round(prob * 20)) + mark,
                      style="bold" if c == p.label else None)
        console.print(t)
        line = _picked_line(name, p)
        if line:
            console.print(line, markup=False)


def register(app) -> None:
    app.command("predict")(predict)
