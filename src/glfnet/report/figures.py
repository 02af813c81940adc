"""Report figures, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Every figure is meant to survive greyscale print: heat maps use luminance-monotone colour maps
(``Greys``, ``cividis``, ``viridis``), bars carry hatching, lines carry markers, attention maps
also get contour lines, and optical flow gets black arrows over its colour-wheel image. Axes
are labelled and classes named. Maps meant to be compared (confusion matrices as fractions,
attention of several classes or samples) share one colour scale and one colour bar.

Figures are sized for the HTML report's text column (:data:`COLUMN_IN` wide at most, panels
wrapped into rows rather than widened), so the page never scales them down and their text
(:data:`STYLE`, 9.5 pt and up: about 15 px) reads at about the size of the prose. Functions
take plain numpy / pandas data, never a run directory, so they are easy to test and reuse.

No pyplot: figures are built as :class:`matplotlib.figure.Figure` on an Agg canvas, so no global
backend is switched and nothing needs a display; the style applies inside each function only.
"""

from __future__ import annotations

import functools
import io as _io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from glfnet.report.render import COLUMN_PX

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure, SubFigure
    from matplotlib.gridspec import GridSpec
    from matplotlib.image import AxesImage
    from matplotlib.typing import RcKeyType

DPI = 110
COLUMN_IN = 0.95 * COLUMN_PX / DPI  # a little narrower than the page's text column
MIN_FONT_PT = 9.5  # the smallest text in any figure (tests hold figures to it)
STYLE: dict[RcKeyType, Any] = {
    "font.size": 10.5,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10.5,
    "xtick.labelsize": MIN_FONT_PT,
    "ytick.labelsize": MIN_FONT_PT,
    "legend.fontsize": MIN_FONT_PT,
    "legend.title_fontsize": MIN_FONT_PT,
    "figure.titlesize": 11.5,
}
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")

F = TypeVar("F", bound=Callable[..., bytes])


def _styled(fn: F) -> F:
    """Draw ``fn``'s figure with :data:`STYLE` (matplotlib's rc settings, for this call only)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> bytes:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _figure(width: float, height: float) -> Figure:
    """A constrained-layout figure on an Agg canvas, never wider than the column."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(width, COLUMN_IN), height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 4})
    return buf.getvalue()


def _grid(k: int, max_cols: int) -> tuple[int, int]:
    """(rows, columns) for ``k`` panels, at most ``max_cols`` a row."""
    cols = max(1, min(k, max_cols))
    return math.ceil(max(k, 1) / cols), cols


# --------------------------------------------------------------------------- confusion


def _confusion_panel(
    ax: Axes, cm: np.ndarray, classes: Sequence[str], normalise: bool, first_col: bool
) -> AxesImage:
    """One matrix (rows true, columns predicted), cells annotated; returns the image."""
    cm = np.asarray(cm, dtype=float)
    if normalise:
        rows = cm.sum(1, keepdims=True)
        shown = np.divide(cm, rows, out=np.full_like(cm, np.nan), where=rows > 0)
        vmax = 1.0
    else:
        shown, vmax = cm, max(cm.max(), 1.0)
    im = ax.imshow(np.nan_to_num(shown, nan=0.0), cmap="Greys", vmin=0, vmax=vmax)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            v = shown[i, j]
            text = "" if np.isnan(v) else (f"{v:.2f}" if normalise else f"{int(v)}")
            ax.text(
                j,
                i,
                text,
                ha="center",
                va="center",
                color="white" if (not np.isnan(v) and v > 0.55 * vmax) else "black",
            )
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes if first_col else [])
    ax.set_xlabel("predicted class")
    if first_col:
        ax.set_ylabel("true class")
    return im


@_styled
def confusion_png(panels: list[tuple[str, np.ndarray]], classes: Sequence[str], normalise: bool) -> bytes:
    """One confusion matrix per panel (title, counts; rows true, columns predicted), two
    panels a row. With ``normalise`` each row is divided by its total (recall on the
    diagonal; empty rows stay blank) and all panels share one colour bar; counts get one bar
    per panel. Cells are annotated; grey scale, dark = high."""
    from matplotlib.ticker import MaxNLocator

    nrows, ncols = _grid(len(panels), 2)
    fig = _figure(4.6 * ncols + (0.9 if normalise else 0.0), 4.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    im = None
    for n, (ax, (title, cm)) in enumerate(zip(axes, panels)):
        im = _confusion_panel(ax, cm, classes, normalise, first_col=n % ncols == 0)
        ax.set_title(title)
        if not normalise:  # each panel has its own count scale
            cb = fig.colorbar(im, ax=ax, shrink=0.8, label="samples")
            cb.locator = MaxNLocator(integer=True)
            cb.update_ticks()
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    if normalise and im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.6, label="fraction of the true class")
    return _png(fig)


# --------------------------------------------------------------------------- per subject


@_styled
def per_subject_png(table: pd.DataFrame, display_names: dict[str, str] | None = None) -> bytes:
    """Horizontal bars of accuracy per subject (columns database, subject, correct, n, acc),
    hatched by database, annotated with correct/n."""
    display_names = display_names or {}
    dbs = list(dict.fromkeys(table["database"]))
    n = len(table)
    fig = _figure(7.5, max(2.4, 0.26 * n + 1.4))
    ax = fig.add_subplot(1, 1, 1)
    ypos = np.arange(n)
    for k, db in enumerate(dbs):
        sel = (table["database"] == db).to_numpy()
        ax.barh(
            ypos[sel],
            table["acc"].to_numpy()[sel],
            color=str(0.35 + 0.2 * (k % 3)),
            edgecolor="black",
            hatch=HATCHES[k % len(HATCHES)],
            label=display_names.get(db, db),
        )
    for y, (c, m, a) in enumerate(zip(table["correct"], table["n"], table["acc"])):
        ax.text(min(a, 1.0) + 0.01, y, f"{int(c)}/{int(m)}", va="center", fontsize=MIN_FONT_PT)
    ax.set_yticks(
        ypos, [f"{display_names.get(d, d)} {s}" for d, s in zip(table["database"], table["subject"])]
    )
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("accuracy on the held-out subject (pooled over seeds)")
    ax.set_ylabel("subject")
    ax.legend(loc="lower right")
    ax.grid(axis="x", color="0.85")
    return _png(fig)


# --------------------------------------------------------------------------- training loss


def _loss_panel(ax: Axes, part: pd.DataFrame, marker: str) -> None:
    from matplotlib.ticker import MaxNLocator

    keys = ["seed", "fold"] + (["member"] if "member" in part else [])  # ensemble members
    for _, run in part.groupby(keys, sort=False, dropna=False):
        ax.plot(run["epoch"], run["loss"], color="0.6", linewidth=0.7, marker="." if len(run) < 3 else None)
    mean = part.groupby("epoch")["loss"].mean()
    ax.plot(
        mean.index,
        mean.to_numpy(),
        color="black",
        linewidth=2.0,
        marker=marker,
        markersize=4,
        label="mean over folds",
    )
    epochs = sorted(part["epoch"].unique())
    if len(epochs) <= 10:
        ax.set_xticks(epochs)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.grid(color="0.9")


@_styled
def loss_curves_png(
    log: pd.DataFrame, fold_database: dict[str, str], display_names: dict[str, str] | None = None
) -> bytes:
    """Training loss per epoch, one panel per database (three a row): a thin grey line per
    (seed, fold) or, for ensembles, per (seed, fold, member); the panel's mean as a thick
    black line with markers."""
    display_names = display_names or {}
    log = log.copy()
    log["database"] = log["fold"].map(lambda f: fold_database.get(f, "other"))
    dbs = list(dict.fromkeys(fold_database.get(f, "other") for f in fold_database)) or ["other"]
    dbs = [d for d in dbs if (log["database"] == d).any()] or sorted(log["database"].unique())
    nrows, ncols = _grid(len(dbs), 3)
    fig = _figure(3.2 * ncols + 0.4, 3.3 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for k, (ax, db) in enumerate(zip(axes, dbs)):
        part = log[log["database"] == db]
        _loss_panel(ax, part, MARKERS[k % len(MARKERS)])
        nf = part["fold"].nunique()
        ax.set_title(f"{display_names.get(db, db)} ({nf} fold{'s' if nf != 1 else ''})")
        if k % ncols == 0:
            ax.set_ylabel("training loss")
    for ax in axes[len(dbs) :]:
        ax.set_axis_off()
    axes[0].legend()
    return _png(fig)


# --------------------------------------------------------------------------- flow images


def flow_to_rgb(u: np.ndarray, v: np.ndarray, max_mag: float | None = None) -> np.ndarray:
    """Colour-wheel image of a flow field (image axes: u right, v down): hue = direction,
    saturation = magnitude relative to ``max_mag`` (default: the 99th percentile), white =
    no motion."""
    from matplotlib.colors import hsv_to_rgb

    mag = np.hypot(u, v)
    if max_mag is None:
        max_mag = float(np.percentile(mag, 99)) if mag.size else 0.0
    max_mag = max(max_mag, 1e-8)
    hue = (np.arctan2(v, u) / (2 * np.pi)) % 1.0
    sat = np.clip(mag / max_mag, 0, 1)
    return hsv_to_rgb(np.stack([hue, sat, np.ones_like(hue)], axis=-1))


def colour_wheel(size: int = 64) -> np.ndarray:
    """The legend of :func:`flow_to_rgb`: direction and size of motion at each point, RGBA
    (transparent outside the unit disk)."""
    c = np.linspace(-1, 1, size)
    u, v = np.meshgrid(c, c)
    rgb = flow_to_rgb(u, v, max_mag=1.0)
    alpha = (np.hypot(u, v) <= 1).astype(float)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def _quiver(ax: Axes, u: np.ndarray, v: np.ndarray, step: int | None = None) -> None:
    h, w = u.shape
    step = step or max(1, min(h, w) // 9)
    yy, xx = np.mgrid[step // 2 : h : step, step // 2 : w : step]
    uu, vv = u[yy, xx], v[yy, xx]
    mag = np.hypot(uu, vv)
    scale = np.percentile(mag, 95) if mag.size else 0.0
    if scale <= 0:
        return
    length = 0.9 * step / scale
    ax.quiver(
        xx,
        yy,
        uu * length,
        vv * length,
        angles="xy",
        scale_units="xy",
        scale=1,
        color="black",
        width=0.012,
        headwidth=3.5,
    )


@dataclass
class Sample:
    """One sample to draw: the signed flow (3, H, W) = (u, v, strain), a title, and optionally
    GLFNet's maps for it (``global`` (h, w), ``regions`` (4,), ``fusion`` (2,))."""

    flow: np.ndarray
    title: str
    maps: dict = field(default_factory=dict)


def _bare(ax: Axes) -> None:
    ax.set_xticks([]), ax.set_yticks([])


def _wheel_legend(ax: Axes) -> None:
    ax.imshow(colour_wheel(), extent=(-1, 1, 1, -1))
    ax.set_title("direction\n(white: still)")
    ax.set_xlabel("u (right +)")
    ax.set_ylabel("v (down +)")
    _bare(ax)


@_styled
def flow_gallery_png(samples: list[Sample], heading: str) -> bytes:
    """Per sample: u, v as a colour wheel with arrows above strain as a heat map (one common
    scale), three samples a row; the colour-wheel legend and the strain colour bar on the
    right."""
    nrows, ncols = _grid(len(samples), 3)
    fig = _figure(2.6 * ncols + 1.7, 4.9 * nrows + 0.4)
    grid = fig.add_gridspec(2 * nrows, ncols + 1, width_ratios=[1] * ncols + [0.7])
    smax = max([float(np.percentile(s.flow[2], 99.5)) for s in samples] + [1e-8])
    im = None
    for j, s in enumerate(samples):
        r, c = divmod(j, ncols)
        u, v, strain = s.flow
        ax = fig.add_subplot(grid[2 * r, c])
        ax.imshow(flow_to_rgb(u, v), interpolation="nearest")
        _quiver(ax, u, v)
        ax.set_title(s.title)
        _bare(ax)
        ax2 = fig.add_subplot(grid[2 * r + 1, c])
        im = ax2.imshow(strain, cmap="cividis", interpolation="nearest", vmin=0, vmax=smax)
        _bare(ax2)
        if c == 0:
            ax.set_ylabel("flow (u, v)")
            ax2.set_ylabel("strain")
    _wheel_legend(fig.add_subplot(grid[0, ncols]))
    if im is not None:
        holder = fig.add_subplot(grid[1, ncols])
        holder.set_axis_off()
        fig.colorbar(im, ax=holder, fraction=0.6, label="strain (common scale)")
    fig.suptitle(heading)
    return _png(fig)


# --------------------------------------------------------------------------- attention


def _attention_range(maps: list[np.ndarray]) -> tuple[float, float]:
    """One colour scale for several attention maps: their common minimum and maximum."""
    if not maps:
        return 0.0, 1.0
    lo, hi = min(float(np.min(g)) for g in maps), max(float(np.max(g)) for g in maps)
    return lo, hi if hi > lo else lo + 1e-8


def _draw_attention(ax: Axes, s: Sample, vmin: float, vmax: float) -> AxesImage | None:
    """Flow magnitude in grey, the global map (colour scale vmin..vmax, contours at half and
    four fifths of its own range), region gates, fusion weights in the title. Returns the
    attention image (None without a global map)."""
    u, v, _ = s.flow
    h, w = u.shape
    mag = np.hypot(u, v)
    ax.imshow(mag, cmap="Greys", interpolation="nearest", vmin=0, vmax=1.6 * max(mag.max(), 1e-8))
    g, im = s.maps.get("global"), None
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    if g is not None:
        g = np.asarray(g, dtype=float)
        im = ax.imshow(
            g, cmap="viridis", alpha=0.6, extent=extent, interpolation="bilinear", vmin=vmin, vmax=vmax
        )
        if np.ptp(g) > 0:
            gy = np.linspace(-0.5, h - 0.5, g.shape[0] + 2)[1:-1]
            gx = np.linspace(-0.5, w - 0.5, g.shape[1] + 2)[1:-1]
            levels = g.min() + np.ptp(g) * np.array([0.5, 0.8])
            ax.contour(
                gx,
                gy,
                g,
                levels=levels,
                colors=["white", "black"],
                linewidths=[1.0, 1.4],
                linestyles=["dashed", "solid"],
            )
    r = s.maps.get("regions")
    if r is not None:
        ax.axhline(h / 2 - 0.5, color="white", linestyle=":", linewidth=1)
        ax.axvline(w / 2 - 0.5, color="white", linestyle=":", linewidth=1)
        for (cy, cx), val in zip(((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)), r):
            ax.text(
                cx * w - 0.5,
                cy * h - 0.5,
                f"{val:.2f}",
                ha="center",
                va="center",
                fontsize=MIN_FONT_PT,
                bbox={"facecolor": "white", "edgecolor": "black", "pad": 1},
            )
    f = s.maps.get("fusion")
    ax.set_title(s.title + ("" if f is None else f"\nfusion: global {f[0]:.2f}, local {f[1]:.2f}"))
    _bare(ax)
    return im


@_styled
def attention_png(samples: list[Sample], heading: str) -> bytes:
    """GLFNet's attention per sample over the flow magnitude (grey), three samples a row: the
    global attention map (translucent viridis on one scale for all samples, with one colour
    bar; contours at 50 % dashed and 80 % solid of each map's range), the four region gates as
    numbers in their quadrants, the fusion's mean channel weights in the title."""
    nrows, ncols = _grid(len(samples), 3)
    fig = _figure(2.8 * ncols + 0.9, 3.8 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    vmin, vmax = _attention_range(
        [np.asarray(s.maps["global"]) for s in samples if s.maps.get("global") is not None]
    )
    images = [_draw_attention(ax, s, vmin, vmax) for ax, s in zip(axes, samples)]
    for ax in axes[len(samples) :]:
        ax.set_axis_off()
    im = next((i for i in images if i is not None), None)
    if im is not None:
        fig.colorbar(im, ax=list(axes), shrink=0.7, label="global attention (common scale)")
    fig.suptitle(heading)
    return _png(fig)


def _class_maps(
    fig: Figure | SubFigure, grid: GridSpec, by_class: dict[str, dict], classes: list[str]
) -> None:
    """One panel per class with its mean global attention map, all on one colour scale, and
    one colour bar."""
    vmin, vmax = _attention_range(
        [np.asarray(by_class[c]["global"]) for c in classes if by_class[c].get("global") is not None]
    )
    axes, im = [], None
    for col, c in enumerate(classes):
        ax = fig.add_subplot(grid[0, col])
        axes.append(ax)
        g = by_class[c].get("global")
        if g is None:
            ax.set_axis_off()
            continue
        im = ax.imshow(np.asarray(g), cmap="viridis", interpolation="bilinear", vmin=vmin, vmax=vmax)
        ax.set_title(f"global attention\ntrue {c} (n={by_class[c].get('n', 0)})")
        _bare(ax)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label="mean attention (common scale)")


def _class_bars(ax: Axes, by_class: dict[str, dict], classes: list[str], key: str) -> None:
    """Grouped, hatched bars of the classes' mean region gates or fusion weights."""
    names, xlabel, ylabel = {
        "regions": (["TL", "TR", "BL", "BR"], "quadrant of the feature map", "region gate (mean)"),
        "fusion": (["global", "local"], "fusion input branch", "channel weight (mean)"),
    }[key]
    width = 0.8 / max(len(classes), 1)
    x = np.arange(len(names))
    for i, c in enumerate(classes):
        vals = by_class[c].get(key)
        if vals is not None:
            ax.bar(
                x + (i - (len(classes) - 1) / 2) * width,
                vals,
                width,
                label=c,
                color=str(0.3 + 0.25 * (i % 3)),
                edgecolor="black",
                hatch=HATCHES[i % len(HATCHES)],
            )
    ax.set_xticks(x, names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.legend(title="true class")


@_styled
def attention_summary_png(by_class: dict[str, dict], classes: Sequence[str]) -> bytes:
    """Means over test samples per true class: the global attention map (one panel per class,
    one shared colour scale and colour bar) above the region gates and the fusion weights,
    global vs local (hatched grouped bars). ``by_class[c]`` holds optional ``global`` (h, w),
    ``regions`` (4,), ``fusion`` (2,), ``n``."""
    classes = [c for c in classes if c in by_class]
    has_g = any(by_class[c].get("global") is not None for c in classes)
    bars = [k for k in ("regions", "fusion") if any(by_class[c].get(k) is not None for c in classes)]
    rows = int(has_g) + int(bool(bars))
    fig = _figure(COLUMN_IN, 3.4 * max(rows, 1))
    top, bottom = fig.subfigures(2, 1, squeeze=False)[:, 0] if rows == 2 else (fig, fig)
    if has_g:
        _class_maps(top, top.add_gridspec(1, max(len(classes), 1)), by_class, classes)
    if bars:
        grid = bottom.add_gridspec(1, len(bars))
        for col, key in enumerate(bars):
            _class_bars(bottom.add_subplot(grid[0, col]), by_class, classes, key)
    return _png(fig)


# --------------------------------------------------------------------------- comparison


@_styled
def comparison_png(
    names: list[str],
    per_seed: dict[str, dict[str, list[float]]],
    metrics: Sequence[str] = ("uf1", "uar"),
    subset_label: str = "Full",
) -> bytes:
    """Per run: the mean (hatched bar) and each seed (black dots) of UF1 and UAR."""
    fig = _figure(1.1 * len(names) * len(metrics) + 2.0, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    for i, m in enumerate(metrics):
        offs = x + (i - (len(metrics) - 1) / 2) * width
        means = [float(np.mean(per_seed[n][m])) if per_seed[n][m] else np.nan for n in names]
        ax.bar(
            offs,
            means,
            width,
            label=m.upper(),
            color=str(0.45 + 0.3 * i),
            edgecolor="black",
            hatch=HATCHES[(i + 1) % len(HATCHES)],
        )
        for o, n in zip(offs, names):
            vals = per_seed[n][m]
            ax.plot([o] * len(vals), vals, linestyle="none", marker=MARKERS[i], color="black", markersize=4)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel(f"{subset_label} score\n(bar: mean, dots: seeds)")
    ax.set_xlabel("run")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", color="0.9")
    ax.legend()
    return _png(fig)
