"""`glfnet report`: report.md / report.html / figures from real (tiny) run directories."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil

import pytest
import yaml

from clirun import glfnet as run_cli
from glfnet.cli.main import main
from glfnet.config import Config
from glfnet.eval import runner
from glfnet.eval.rundir import RunDirError, load_run
from glfnet.report.build import build_report

ORACLE = "oracle (test-selected, optimistic)"
NUM = re.compile(r"(?<![\w.])[+-]?\d+(?:\.\d+)?(?!\w)(?!\.\d)")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def small_flat(tmp_path_factory, tiny_rows, tiny_flows):
    """Three subjects (one per database, the one with most classes): three folds."""
    from glfnet.data.synthflow import write_flat

    best = {}
    for db in sorted({r["database"] for r in tiny_rows}):
        subs = {r["subject"] for r in tiny_rows if r["database"] == db}
        best[db] = max(
            sorted(subs),
            key=lambda s: (
                len({r["label"] for r in tiny_rows if r["subject"] == s}),
                sum(r["subject"] == s for r in tiny_rows),
            ),
        )
    rows = [r for r in tiny_rows if r["subject"] in best.values()]
    d = tmp_path_factory.mktemp("small")
    write_flat(d, rows, {r["sample_id"]: tiny_flows[r["sample_id"]] for r in rows}, "htnet")
    return d


@pytest.fixture(scope="module")
def small_set(small_flat):
    from glfnet.data.flowsets import load_flowset

    return load_flowset(small_flat)


@pytest.fixture(scope="module")
def glf_run(small_set, tmp_path_factory):
    """GLFNet (attention maps), two seeds, with an oracle section."""
    out = tmp_path_factory.mktemp("glf")
    runner.run_protocol(
        small_set, Config(model="glfnet_s", epochs=2, batch_size=16, seeds=[0, 1], oracle=True), out
    )
    return out, build_report(out)


@pytest.fixture(scope="module")
def sst_run(small_set, tmp_path_factory):
    """STSTNet (no attention maps), two seeds, no oracle."""
    out = tmp_path_factory.mktemp("sst")
    runner.run_protocol(small_set, Config(model="ststnet", epochs=2, batch_size=16, seeds=[0, 1]), out)
    with pytest.raises(SystemExit) as e:  # through the command line this time
        main(["report", str(out)])
    assert not e.value.code
    return out, [out / "report.md", out / "report.html"]


# --------------------------------------------------------------------------- helpers


def metric_strings(metrics: dict) -> set[str]:
    """Every number of metrics.json as the report may print it: ints as such, floats with 4
    decimals (or as written in the configuration), times in seconds with 1 decimal."""
    out: set[str] = set()

    def walk(o, key=None):
        if isinstance(o, bool) or o is None:
            return
        if isinstance(o, int):
            out.add(str(o))
        elif isinstance(o, float):
            out.update({f"{o:.4f}", str(o)})
            if key in ("wall_seconds", "fold_seconds"):
                out.add(f"{o:.1f}")
        elif isinstance(o, dict):
            for k, v in o.items():
                walk(v, k)
        elif isinstance(o, list):
            for v in o:
                walk(v, key)

    walk(metrics)
    return out


def prose_numbers(md: str) -> list[str]:
    """Numbers of the markdown outside code spans and image links."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", md)
    text = re.sub(r"`[^`]*`", " ", text)
    return NUM.findall(text)


def html_text(page: str) -> str:
    """What a reader of report.html sees: no style sheet, tags or embedded image data."""
    import html

    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def section(md: str, heading: str) -> str:
    """The text from a '## heading' line to the next '## ' heading."""
    lines = md.splitlines()
    start = lines.index(heading)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


def tables(text: str) -> list[list[list[str]]]:
    """Markdown tables in ``text``: rows of cells, header row first, separator dropped."""
    out, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
            if not all(re.fullmatch(r"-+:?", c) for c in cells):
                cur.append(cells)
        elif cur:
            out.append(cur)
            cur = []
    return out


def check_results_table(table, metrics: dict, which: str) -> None:
    from glfnet.data.naming import DB_DISPLAY

    section_ = metrics[which]
    header, rows = table[0], table[1:]
    assert header == ["Subset", "Samples", "UF1", "UAR", "Accuracy"]
    by_name = {DB_DISPLAY[k]: v for k, v in section_.items()}
    assert [r[0] for r in rows] == ["Full", "SMIC", "CASME II", "SAMM"]
    for name, n, uf1, uar, acc in rows:
        s = by_name[name]
        assert int(n) == s["n"]
        for cell, key in ((uf1, "uf1"), (uar, "uar"), (acc, "acc")):
            mean, std = (float(x) for x in cell.split(" ± "))
            assert mean == round(s[key], 4) and std == round(s[f"{key}_std"], 4)


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_report_files_and_sections(glf_run):
    out, paths = glf_run
    assert paths == [out / "report.md", out / "report.html"]
    md = (out / "report.md").read_text(encoding="utf-8")
    for heading in (
        "## Protocol",
        "## Results (leak-free)",
        "### Per seed",
        "### Confusion matrices",
        "## Per-subject accuracy",
        "## Training loss",
        "## Input flows: correct and wrong predictions",
        "## Attention",
        "## Run time and machine",
    ):
        assert heading in md.splitlines(), heading
    assert "Leave-one-subject-out" in md and "leak-free" in md
    for name in (
        "confusion_counts",
        "confusion_normalised",
        "per_subject_accuracy",
        "loss_curves",
        "gallery_correct",
        "attention_summary",
    ):
        assert f"](figures/{name}.png)" in md, name
        assert (out / "figures" / f"{name}.png").is_file()


@pytest.mark.parametrize("which", ["glf_run", "sst_run"])
@pytest.mark.slow
def test_every_number_in_report_md_comes_from_metrics(which, request):
    out, _ = request.getfixturevalue(which)
    md = (out / "report.md").read_text(encoding="utf-8")
    metrics = json.loads((out / "metrics.json").read_text())
    allowed = metric_strings(metrics)
    numbers = prose_numbers(md)
    assert len(numbers) > 50
    stray = sorted({n for n in numbers if n not in allowed})
    assert not stray, f"numbers in report.md not in metrics.json: {stray}"
    # the headline table, cell by cell
    check_results_table(tables(section(md, "## Results (leak-free)"))[0], metrics, "honest")
    # per-seed rows and the confusion counts
    res = tables(section(md, "## Results (leak-free)"))
    per_seed = res[1]
    assert [(r[0], int(r[1])) for r in per_seed[1:4:2]] == [("Full", 0), ("SMIC", 0)]
    for row in per_seed[1:]:
        from glfnet.data.naming import DB_DISPLAY

        key = {v: k for k, v in DB_DISPLAY.items()}[row[0]]
        ps = next(p for p in metrics["honest"][key]["per_seed"] if p["seed"] == int(row[1]))
        assert [float(x) for x in row[2:]] == [round(ps[k], 4) for k in ("uf1", "uar", "acc")]
    confusion = next(t for t in res if t[0][0] == "true \\ predicted")
    assert [[int(x) for x in r[1:]] for r in confusion[1:]] == metrics["honest"]["full"]["confusion"]


@pytest.mark.slow
def test_images_decode_and_html_is_self_contained(glf_run):
    from PIL import Image

    out, _ = glf_run
    pngs = sorted((out / "figures").glob("*.png"))
    assert len(pngs) >= 8
    for p in pngs:
        with Image.open(p) as im:
            im.load()
            assert im.format == "PNG" and im.width > 50 and im.height > 50
    md = (out / "report.md").read_text(encoding="utf-8")
    for rel in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (out / rel).is_file(), rel
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for bad in ("http://", "https://", "href=", "<link", "<script", "url(", "@import", "file:"):
        assert bad not in page.lower(), bad
    srcs = re.findall(r'src="([^"]*)"', page)
    assert len(srcs) == len(re.findall(r"!\[", md))
    assert all(s.startswith("data:image/png;base64,") for s in srcs)
    for s in srcs:
        with Image.open(io.BytesIO(base64.b64decode(s.split(",", 1)[1]))) as im:
            im.load()


@pytest.mark.slow
def test_oracle_section_labelled_and_apart(glf_run):
    out, _ = glf_run
    md = (out / "report.md").read_text(encoding="utf-8")
    metrics = json.loads((out / "metrics.json").read_text())
    heading = f"## {ORACLE}"
    lines = md.splitlines()
    assert heading in lines
    assert lines.index(heading) > lines.index("## Results (leak-free)")
    assert lines.index(heading) > lines.index("## Attention")  # after every leak-free section
    # the honest section has no oracle table, the oracle section its own, equal to metrics
    assert ORACLE not in section(md, "## Results (leak-free)")
    check_results_table(tables(section(md, heading))[0], metrics, "oracle")
    assert (out / "figures" / "oracle_confusion_counts.png").is_file()
    assert ORACLE in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_run_without_oracle_has_no_oracle_anywhere(sst_run):
    out, _ = sst_run
    assert json.loads((out / "metrics.json").read_text())["oracle"] is None
    for name in ("report.md", "report.html"):
        assert "oracle" not in (out / name).read_text(encoding="utf-8").lower(), name
    assert not [p for p in (out / "figures").iterdir() if "oracle" in p.name]
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "has no attention modules" in md  # ststnet


@pytest.mark.slow
def test_oracle_dropped_from_metrics_leaves_no_trace(glf_run, tmp_path_factory):
    """Even with oracle_predictions.csv and the folds' oracle records still on disk, a
    metrics.json without an oracle section gives a report without oracle numbers."""
    src, _ = glf_run
    out = tmp_path_factory.mktemp("copy") / "run"  # (tmp_path would hold the word in its name)
    shutil.copytree(src, out)
    m = json.loads((out / "metrics.json").read_text())
    # the oracle's scores as the report prints them (4 decimals); its small integers (epochs,
    # counts) are left out: they may appear in the prose for other reasons
    scores = {s for s in metric_strings(m["oracle"]) if re.fullmatch(r"\d+\.\d{4}", s)}
    oracle_only = scores - metric_strings({k: v for k, v in m.items() if k != "oracle"})
    assert oracle_only  # the check below would pass vacuously without them
    m["oracle"] = None
    (out / "metrics.json").write_text(json.dumps(m))
    assert (out / "oracle_predictions.csv").exists()
    build_report(out)
    md = (out / "report.md").read_text(encoding="utf-8")
    page = (out / "report.html").read_text(encoding="utf-8")
    for text in (md, page, html_text(page)):
        assert "oracle" not in text.lower()
    for text in (md, html_text(page)):
        assert not (set(prose_numbers(text)) & oracle_only)
    assert not list((out / "figures").glob("oracle_*"))


@pytest.mark.slow
def test_missing_input_data_is_reported_not_fatal(sst_run, tmp_path):
    src, _ = sst_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["data"] = str(tmp_path / "gone")
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    build_report(out)
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "No gallery: the input data" in md and "could not be read" in md
    assert not (out / "figures" / "gallery_correct.png").exists()  # stale figure removed


@pytest.mark.slow
def test_changed_input_data_are_not_shown(sst_run, tmp_path):
    src, _ = sst_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["data_digest"] = "0" * 16
    (out / "config.yaml").write_text(yaml.safe_dump(cfg))
    from glfnet.report.build import _load_inputs

    fs, why = _load_inputs(load_run(out))
    assert fs is None and "changed since the run" in why


def test_not_a_run_directory(tmp_path, capsys):
    with pytest.raises(RunDirError, match="run `glfnet loso"):
        build_report(tmp_path)
    code, _, err = run_cli(capsys, "report", tmp_path)
    assert code == 2 and "not a glfnet run directory" in err and "metrics.json" in err


@pytest.mark.slow
def test_loso_writes_the_report_unless_told_not_to(small_flat, tmp_path, capsys):
    code, stdout, _ = run_cli(
        capsys,
        "loso",
        small_flat,
        "--model",
        "ststnet",
        "--epochs",
        "1",
        "--seeds",
        "0",
        "--out",
        tmp_path / "a",
        "--quiet",
    )
    assert code == 0 and (tmp_path / "a" / "report.html").is_file() and "report:" in stdout
    code, _, _ = run_cli(
        capsys,
        "loso",
        small_flat,
        "--model",
        "ststnet",
        "--epochs",
        "1",
        "--seeds",
        "0",
        "--out",
        tmp_path / "b",
        "--quiet",
        "--no-report",
    )
    assert code == 0 and (tmp_path / "b" / "metrics.json").is_file()
    assert not (tmp_path / "b" / "report.md").exists()


# --------------------------------------------------------------------------- page and figures


def test_html_renders_emphasis_and_bold():
    """*emphasis* and **bold** become tags (the oracle note used to show literal stars);
    nothing inside a code span is formatted."""
    from glfnet.report.render import inline_html

    assert inline_html("section *oracle (x)* here") == "section <em>oracle (x)</em> here"
    assert (
        inline_html("**on the test data** and *training*")
        == "<strong>on the test data</strong> and <em>training</em>"
    )
    assert inline_html("`a*b*c` 2 * 3 * 4") == "<code>a*b*c</code> 2 * 3 * 4"


@pytest.mark.slow
def test_oracle_report_page_shows_no_markdown_stars(glf_run):
    out, _ = glf_run
    text = html_text((out / "report.html").read_text(encoding="utf-8"))
    assert "*" not in text
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"<em>{ORACLE}</em>" in page


@pytest.fixture(scope="module")
def drawn(glf_run, tmp_path_factory):
    """Every figure of the oracle run's report, as matplotlib figures: {function: [figure]}."""
    import inspect

    from glfnet.report import figures as F

    out = tmp_path_factory.mktemp("drawn") / "run"
    shutil.copytree(glf_run[0], out)
    figs: dict[str, list] = {}
    real = F._png

    def keep(fig):
        figs.setdefault(inspect.stack()[1].function, []).append(fig)
        return real(fig)

    mp = pytest.MonkeyPatch()
    mp.setattr(F, "_png", keep)
    try:
        build_report(out)
        names = ["full", "no-local", "no-global", "concat", "sum", "ce-loss", "ststnet"]  # ablate
        F.comparison_png(names, {n: {"uf1": [0.5, 0.6], "uar": [0.4, 0.5]} for n in names})
    finally:
        mp.undo()
    return figs


@pytest.mark.slow
def test_figures_fit_the_page_column_with_readable_text_and_nothing_clipped(drawn):
    """No figure is wider than the HTML column (so the page never shrinks it), no text is
    smaller than MIN_FONT_PT (about 15 px on the page), and every title, label and colour bar
    lies inside the image."""
    from matplotlib.text import Text

    from glfnet.report import figures as F

    assert {
        "confusion_png",
        "per_subject_png",
        "loss_curves_png",
        "flow_gallery_png",
        "attention_png",
        "attention_summary_png",
        "comparison_png",
    } <= set(drawn)
    for name, figs in drawn.items():
        for fig in figs:
            width, height = fig.get_size_inches()
            assert width <= F.COLUMN_IN + 1e-6, name
            sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
            assert sizes and min(sizes) >= F.MIN_FONT_PT, (name, min(sizes))
            box = fig.get_tightbbox(fig.canvas.get_renderer())
            assert box.x0 >= -0.02 and box.y0 >= -0.02, (name, box)
            assert box.x1 <= width + 0.02 and box.y1 <= height + 0.02, (name, box)


@pytest.mark.slow
def test_maps_to_compare_share_one_colour_scale(drawn):
    """Attention of all classes (and of all overlay samples) on one scale with one colour bar;
    row-normalised confusion matrices likewise."""
    for name in ("attention_summary_png", "attention_png"):
        for fig in drawn[name]:
            images = [im for ax in fig.axes for im in ax.get_images() if im.get_cmap().name == "viridis"]
            assert len(images) > 1 and len({im.get_clim() for im in images}) == 1, name
            assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 1, name
    normalised = [
        fig
        for fig in drawn["confusion_png"]
        if all(im.get_clim() == (0, 1) for ax in fig.axes for im in ax.get_images())
    ]
    assert normalised and all(
        sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 1 for fig in normalised
    )


@pytest.mark.slow
def test_one_seed_shows_means_without_spread(sst_run, tmp_path):
    """A one-seed run (metrics.json of this version: null spread; of the previous one: 0.0)
    gets means only, never '± 0.0000'."""
    src, _ = sst_run
    for std in (None, 0.0):
        out = tmp_path / f"run-{std}"
        shutil.copytree(src, out)
        m = json.loads((out / "metrics.json").read_text())
        m["seeds"] = [0]
        for block in m["honest"].values():
            block["per_seed"] = block["per_seed"][:1]
            block.update(uf1_std=std, uar_std=std, acc_std=std)
        (out / "metrics.json").write_text(json.dumps(m))
        build_report(out)
        results = tables(section((out / "report.md").read_text(encoding="utf-8"), "## Results (leak-free)"))[
            0
        ]
        assert all("±" not in cell for row in results[1:] for cell in row), results
