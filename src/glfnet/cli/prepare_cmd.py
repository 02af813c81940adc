"""`glfnet prepare`: raw dataset folders -> flow cache (issue 3).

One sub-command per database (``casme2``, ``samm``, ``smic``, ``smic-e``, ``casme3a``,
``mmew``) and ``megc2019`` for the composite. Each reads the official layout
(:mod:`glfnet.data.readers`), applies a protocol (:mod:`glfnet.data.protocols`), and writes
the cache (:mod:`glfnet.preprocess.prepare`), then prints the counts per database and class,
the anomalies, and the expected samples it could not find
(:func:`glfnet.cli.prepare_view.prepare_and_report`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from glfnet.cli.messages import flagify, warn
from glfnet.cli.prepare_view import prepare_and_report
from glfnet.data import naming
from glfnet.data.protocols import DEFAULT_PROTOCOL, PROTOCOLS
from glfnet.errors import ConfigError

prepare_app = typer.Typer(
    name="prepare",
    help=(
        "Raw dataset folders -> flow cache (face crop, TV-L1 flow + strain), read by "
        "`glfnet loso` and `glfnet inspect`.\n\n"
        "One sub-command per database, plus `megc2019` for the composite "
        "(CASME II + SAMM + SMIC-HS, 442 samples). `glfnet prepare casme2 --help` shows the "
        "folder layout it expects. Re-running with the same --out resumes: finished samples "
        "are kept."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

# ---------------------------------------------------------------------------- shared options
Root = Annotated[Path, typer.Option("--root", help="The database folder (layout above).", show_default=False)]
Annotations = Annotated[
    Path | None,
    typer.Option("--annotations", help="The annotation sheet, when it is not in or beside --root."),
]
Out = Annotated[
    Path, typer.Option("--out", "-o", help="Cache folder to write (or resume).", show_default=False)
]
Size = Annotated[
    int, typer.Option("--size", help="Side of the stored flow, px (network input; resized last).")
]
Crop = Annotated[int, typer.Option("--crop", help="Face crop side, px, on which the flow is computed.")]
Margin = Annotated[
    float, typer.Option("--margin", help="Crop margin per side, fraction of the landmark box.")
]
Align = Annotated[
    bool,
    typer.Option(
        "--align/--no-align", help="Detect, level and crop the face; --no-align for already-cropped frames."
    ),
]
Apex = Annotated[
    str,
    typer.Option(
        "--apex", help="Apex where the annotation has none or an invalid one: {apex_rules}. Never the label."
    ),
]
Flow = Annotated[
    str,
    typer.Option(
        "--flow", help="Optical flow: {flow_methods} (tvl1 is the reference; the others are faster)."
    ),
]
Variant = Annotated[
    str,
    typer.Option("--variant", help="Frame set: auto, raw, selected (CASME II), cropped (CASME II, SMIC)."),
]
Jobs = Annotated[int, typer.Option("--jobs", "-j", help="Worker processes; 0 = all cores.")]
ExportPng = Annotated[
    Path | None,
    typer.Option("--export-png", help="Also write the STSTNet 28x28 PNG layout + labels.csv there."),
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace a cache in --out made with other settings.")
]


def _protocol_option(db: str) -> Any:
    return typer.Option(
        None, "--protocol", help=f"Sample set: {' | '.join(PROTOCOLS)}.", show_default=DEFAULT_PROTOCOL[db]
    )


def _params(size: int, crop: int, margin: float, align: bool, flow: str, apex: str) -> Any:
    from glfnet.preprocess.pipeline import PrepParams

    return PrepParams(crop_size=crop, size=size, margin=margin, align=align, flow=flow, apex=apex)


# ---------------------------------------------------------------------------- commands


def _single(db: str) -> Callable[..., None]:
    from glfnet.data.readers import READERS

    reader = READERS[db]

    def command(
        root: Root,
        out: Out,
        annotations: Annotations = None,
        protocol: str | None = _protocol_option(db),
        size: Size = 28,
        crop: Crop = 128,
        margin: Margin = 0.15,
        align: Align = True,
        apex: Apex = "midpoint",
        flow: Flow = "tvl1",
        variant: Variant = "auto",
        jobs: Jobs = 0,
        export_png: ExportPng = None,
        overwrite: Overwrite = False,
    ) -> None:
        from glfnet.preprocess.prepare import Source  # OpenCV: not when the CLI starts

        params = _params(size, crop, margin, align, flow, apex)
        prepare_and_report(
            [Source(db, root, annotations, variant)], out, protocol, params, jobs, export_png, overwrite
        )

    sheet = "" if reader.has_sheet else " (no sheet: labels from the folders)"
    command.__doc__ = f"Prepare {reader.display}{sheet}.\n\nExpected layout:\n\n{_layout(reader.layout)}"
    return command


MEGC2019_DATABASES = ("casme2", "samm", "smic")


def megc2019(
    out: Out,
    casme2: Annotated[
        Path | None, typer.Option("--casme2", help="CASME II root (see `prepare casme2 --help`).")
    ] = None,
    samm: Annotated[
        Path | None, typer.Option("--samm", help="SAMM root (see `prepare samm --help`).")
    ] = None,
    smic: Annotated[
        Path | None, typer.Option("--smic", help="SMIC root (see `prepare smic --help`).")
    ] = None,
    casme2_annotations: Annotated[
        Path | None,
        typer.Option("--casme2-annotations", help="CASME II coding sheet, if not beside its root."),
    ] = None,
    samm_annotations: Annotated[
        Path | None, typer.Option("--samm-annotations", help="SAMM sheet, if not beside its root.")
    ] = None,
    size: Size = 28,
    crop: Crop = 128,
    margin: Margin = 0.15,
    align: Align = True,
    apex: Apex = "midpoint",
    flow: Flow = "tvl1",
    jobs: Jobs = 0,
    export_png: ExportPng = None,
    overwrite: Overwrite = False,
) -> None:
    """Prepare the MEGC2019 composite (its help: :func:`_megc_help`)."""
    from glfnet.preprocess.prepare import Source

    roots = {"casme2": (casme2, casme2_annotations), "samm": (samm, samm_annotations), "smic": (smic, None)}
    sources = [Source(db, root, ann) for db, (root, ann) in roots.items() if root is not None]
    if not sources:
        raise ConfigError(
            "megc2019 needs the database folders: --casme2 DIR --samm DIR "
            "--smic DIR (see `glfnet prepare megc2019 --help`)."
        )
    for db in MEGC2019_DATABASES:
        if roots[db][0] is None:
            warn(f"--{db} not given: the composite will lack its {naming.DB_DISPLAY[db]} samples")
    params = _params(size, crop, margin, align, flow, apex)
    prepare_and_report(sources, out, "megc2019", params, jobs, export_png, overwrite)


def _layout(text: str) -> str:
    """A reader's layout text for help: parameters as flags, brackets kept literal."""
    return flagify(text).replace("[", "\\[")


def _megc_help() -> str:
    from glfnet.data.readers import READERS

    layouts = "\n\n".join(f"--{db}:\n{_layout(READERS[db].layout)}" for db in MEGC2019_DATABASES)
    return (
        "Prepare the MEGC2019 composite: CASME II + SAMM + SMIC-HS, classes negative / "
        "positive / surprise (442 samples, 68 subjects, 250/109/83 when all three are "
        "complete).\n\nRules: CASME II 2014 sheet, disgust+repression -> negative, "
        "happiness -> positive, surprise; sub04/EP12_01f and sub05/EP09_05f dropped. SAMM "
        "micro rows except Other; anger/contempt/disgust/fear/sadness -> negative. SMIC-HS "
        "label from the folder.\n\nExpected layouts (the sheets in or beside each root):"
        f"\n\n{layouts}"
    )


def register(app: typer.Typer) -> None:
    """Add `prepare` and its sub-commands to the app."""
    from glfnet.data.readers import READERS

    for db in READERS:
        command = _single(db)
        prepare_app.command(db, help=command.__doc__)(command)
    prepare_app.command("megc2019", help=_megc_help())(megc2019)
    app.add_typer(prepare_app, name="prepare")
