"""Report figures, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Every figure is meant to survive greyscale print: heat maps use luminance-monotone colour maps
(``Greys``, ``cividis``, ``viridis``), bars carry hatching, lines carry markers, attention maps
also get contour lines, and optical flow gets black arrows over its colour-wheel image. Axes
are labelled and classes named. Functions take plain numpy / pandas data, never a run
directory, so they are easy to test and reuse.

No pyplot: figures are built as :class:`matplotlib.figure.Figure` on an Agg canvas, so no global
backend is switched and nothing needs a display.
"""

from __future__ import annotations

import io as _io
from dataclasses import dataclass, field

import numpy as np

DPI = 110
HATCHES = ("", "//", "..", "xx", "\\\\", "++", "oo", "--")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
QUADRANTS = ("top-left", "top-right", "bottom-left", "bottom-right")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = _io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, facecolor="white", pil_kwargs={"compress_level": 4})
    return buf.getvalue()


# --------------------------------------------------------------------------- confusion

def confusion_png(panels: list[tuple[str, np.ndarray]], classes, normalise: bool) -> bytes:
    """One confusion matrix per panel (title, counts; rows true, columns predicted). With
    ``normalise`` each row is divided by its total (recall on the diagonal); empty rows stay
    blank. Cells are annotated; grey scale, dark = high."""
    from matplotlib.ticker import MaxNLocator

    k = len(panels)
    fig = _figure((3.2 if normalise else 3.7) * k + 0.6, 3.4)
    axes = fig.subplots(1, k, squeeze=False)[0]
    for n, (ax, (title, cm)) in enumerate(zip(axes, panels)):
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
                ax.text(j, i, text, ha="center", va="center", fontsize=9,
                        color="white" if (not np.isnan(v) and v > 0.55 * vmax) else "black")
        ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
        ax.set_yticks(range(len(classes)), classes if n == 0 else [])
        ax.set_xlabel("predicted class")
        if n == 0:
            ax.set_ylabel("true class")
        ax.set_title(title, fontsize=10)
        if not normalise:  # each panel has its own count scale
            cb = fig.colorbar(im, ax=ax, shrink=0.7, label="samples" if n == k - 1 else None)
            cb.locator = MaxNLocator(integer=True)
            cb.update_ticks()
    if normalise:
        fig.colorbar(im, ax=list(axes), shrink=0.8, label="fraction of the true class")
    return _png(fig)


# --------------------------------------------------------------------------- per subject

def per_subject_png(table, display_names: dict | None = None) -> bytes:
    """Horizontal bars of accuracy per subject (columns database, subject, correct, n, acc),
    hatched by database, annotated with correct/n."""
    display_names = display_names or {}
    dbs = list(dict.fromkeys(table["database"]))
    n = len(table)
    fig = _figure(6.4, max(2.0, 0.22 * n + 1.2))
    ax = fig.add_subplot(1, 1, 1)
    ypos = np.arange(n)
    for k, db in enumerate(dbs):
        sel = (table["database"] == db).to_numpy()
        ax.barh(ypos[sel], table["acc"].to_numpy()[sel], color=str(0.35 + 0.2 * (k % 3)),
                edgecolor="black", hatch=HATCHES[k % len(HATCHES)], label=display_names.get(db, db))
    for y, (c, m, a) in enumerate(zip(table["correct"], table["n"], table["acc"])):
        ax.text(min(a, 1.0) + 0.01, y, f"{int(c)}/{int(m)}", va="center", fontsize=7)
    ax.set_yticks(ypos, [f"{display_names.get(d, d)} {s}" for d, s in
                         zip(table["database"], table["subject"])], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("accuracy on the held-out subject (pooled over seeds)")
    ax.set_ylabel("subject")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", color="0.85")
    return _png(fig)


# --------------------------------------------------------------------------- training loss

def loss_curves_png(log, fold_database: dict, display_names: dict | None = None) -> bytes:
    """Training loss per epoch, one panel per database: a thin grey line per (seed, fold) or,
    for ensembles, per (seed, fold, member); the panel's mean as a thick black line with
    markers."""
    from matplotlib.ticker import MaxNLocator

    display_names = display_names or {}
    log = log.copy()
    log["database"] = log["fold"].map(lambda f: fold_database.get(f, "other"))
    dbs = list(dict.fromkeys(fold_database.get(f, "other") for f in fold_database)) or ["other"]
    dbs = [d for d in dbs if (log["database"] == d).any()] or sorted(log["database"].unique())
    fig = _figure(3.3 * len(dbs) + 0.4, 3.1)
    axes = fig.subplots(1, len(dbs), squeeze=False, sharey=True)[0]
    for k, (ax, db) in enumerate(zip(axes, dbs)):
        part = log[log["database"] == db]
        keys = ["seed", "fold"] + (["member"] if "member" in part else [])  # ensemble members
        for _, run in part.groupby(keys, sort=False, dropna=False):
            ax.plot(run["epoch"], run["loss"], color="0.6", linewidth=0.7,
                    marker="." if len(run) < 3 else None)
        mean = part.groupby("epoch")["loss"].mean()
        ax.plot(mean.index, mean.to_numpy(), color="black", linewidth=2.0,
                marker=MARKERS[k % len(MARKERS)], markersize=4, label="mean over folds")
        nf = part["fold"].nunique()
        ax.set_title(f"{display_names.get(db, db)} ({nf} fold{'s' if nf != 1 else ''})", fontsize=10)
        ax.set_xlabel("epoch")
        epochs = sorted(part["epoch"].unique())
        if len(epochs) <= 10:
            ax.set_xticks(epochs)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(color="0.9")
    axes[0].set_ylabel("training loss")
    axes[0].legend(fontsize=8)
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


def _quiver(ax, u, v, step: int | None = None) -> None:
    h, w = u.shape
    step = step or max(1, min(h, w) // 9)
    yy, xx = np.mgrid[step // 2:h:step, step // 2:w:step]
    uu, vv = u[yy, xx], v[yy, xx]
    mag = np.hypot(uu, vv)
    scale = np.percentile(mag, 95) if mag.size else 0.0
    if scale <= 0:
        return
    length = 0.9 * step / scale
    ax.quiver(xx, yy, uu * length, vv * length, angles="xy", scale_units="xy", scale=1,
              color="black", width=0.012, headwidth=3.5)


@dataclass
class Sample:
    """One sample to draw: the signed flow (3, H, W) = (u, v, strain), a title, and optionally
    GLFNet's maps for it (``global`` (h, w), ``regions`` (4,), ``fusion`` (2,))."""

    flow: np.ndarray
    title: str
    maps: dict = field(default_factory=dict)


def flow_gallery_png(samples: list[Sample], heading: str) -> bytes:
    """Per sample (one column): u, v as a colour wheel with arrows, and strain as a heat map;
    a colour-wheel legend on the right."""
    k = len(samples)
    fig = _figure(1.9 * k + 1.6, 4.8)
    grid = fig.add_gridspec(2, k + 1, width_ratios=[1] * k + [0.8])
    smax = max([float(np.percentile(s.flow[2], 99.5)) for s in samples] + [1e-8])
    for j, s in enumerate(samples):
        u, v, strain = s.flow
        ax = fig.add_subplot(grid[0, j])
        ax.imshow(flow_to_rgb(u, v), interpolation="nearest")
        _quiver(ax, u, v)
        ax.set_title(s.title, fontsize=7)
        ax.set_xticks([]), ax.set_yticks([])
        if j == 0:
            ax.set_ylabel("flow (u, v)")
        ax2 = fig.add_subplot(grid[1, j])
        im = ax2.imshow(strain, cmap="cividis", interpolation="nearest", vmin=0, vmax=smax)
        ax2.set_xticks([]), ax2.set_yticks([])
        if j == 0:
            ax2.set_ylabel("strain")
    legend = fig.add_subplot(grid[0, k])
    legend.imshow(colour_wheel(), extent=(-1, 1, 1, -1))
    legend.set_title("direction\n(white: still)", fontsize=7)
    legend.set_xlabel("u (right +)", fontsize=7)
    legend.set_ylabel("v (down +)", fontsize=7)
    legend.set_xticks([]), legend.set_yticks([])
    if k:
        cax = fig.add_subplot(grid[1, k])
        cax.set_axis_off()
        fig.colorbar(im, ax=cax, fraction=0.5, label="strain (common scale)")
    fig.suptitle(heading, fontsize=10)
    return _png(fig)


# --------------------------------------------------------------------------- attention

def _draw_attention(ax, s: Sample) -> None:
    u, v, _ = s.flow
    h, w = u.shape
    mag = np.hypot(u, v)
    ax.imshow(mag, cmap="Greys", interpolation="nearest", vmin=0, vmax=1.6 * max(mag.max(), 1e-8))
    g = s.maps.get("global")
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)
    if g is not None:
        g = np.asarray(g, dtype=float)
        ax.imshow(g, cmap="viridis", alpha=0.6, extent=extent, interpolation="bilinear")
        if np.ptp(g) > 0:
            gy = np.linspace(-0.5, h - 0.5, g.shape[0] + 2)[1:-1]
            gx = np.linspace(-0.5, w - 0.5, g.shape[1] + 2)[1:-1]
            levels = g.min() + np.ptp(g) * np.array([0.5, 0.8])
            ax.contour(gx, gy, g, levels=levels, colors=["white", "black"],
                       linewidths=[1.0, 1.4], linestyles=["dashed", "solid"])
    r = s.maps.get("regions")
    if r is not None:
        ax.axhline(h / 2 - 0.5, color="white", linestyle=":", linewidth=1)
        ax.axvline(w / 2 - 0.5, color="white", linestyle=":", linewidth=1)
        for (cy, cx), val in zip(((0.25, 0.25), (0.25, 0.75), (0.75, 0.25), (0.75, 0.75)), r):
            ax.text(cx * w - 0.5, cy * h - 0.5, f"{val:.2f}", ha="center", va="center",
                    fontsize=7, bbox={"facecolor": "white", "edgecolor": "black", "pad": 1})
    f = s.maps.get("fusion")
    title = s.title
    if f is not None:
        title += f"\nfusion: global {f[0]:.2f}, local {f[1]:.2f}"
    ax.set_title(title, fontsize=7)
    ax.set_xticks([]), ax.set_yticks([])


def attention_png(samples: list[Sample], heading: str) -> bytes:
    """GLFNet's attention per sample over the flow magnitude (grey): the global attention map
    (translucent viridis, contours at 50 % dashed and 80 % solid of its range), the four region
    gates as numbers in their quadrants, the fusion's mean channel weights in the title."""
    k = len(samples)
    fig = _figure(2.0 * k + 0.3, 2.9)
    axes = fig.subplots(1, k, squeeze=False)[0]
    for ax, s in zip(axes, samples):
        _draw_attention(ax, s)
    fig.suptitle(heading, fontsize=10)
    return _png(fig)


def attention_summary_png(by_class: dict[str, dict], classes) -> bytes:
    """Means over test samples per true class: the global attention map (one panel per class),
    region gates (hatched grouped bars), fusion weights global vs local (hatched bars).
    ``by_class[c]`` holds optional ``global`` (h, w), ``regions`` (4,), ``fusion`` (2,), ``n``."""
    classes = [c for c in classes if c in by_class]
    has_g = any(by_class[c].get("global") is not None for c in classes)
    has_r = any(by_class[c].get("regions") is not None for c in classes)
    has_f = any(by_class[c].get("fusion") is not None for c in classes)
    ncols = (len(classes) if has_g else 0) + int(has_r) + int(has_f)
    fig = _figure(2.6 * max(ncols, 1) + 0.6, 3.2)
    grid = fig.add_gridspec(1, max(ncols, 1))
    col = 0
    if has_g:
        for c in classes:
            ax = fig.add_subplot(grid[0, col])
            col += 1
            g = by_class[c].get("global")
            if g is None:
                ax.set_axis_off()
                continue
            im = ax.imshow(np.asarray(g), cmap="viridis", interpolation="bilinear")
            ax.set_title(f"global attention\ntrue {c} (n={by_class[c].get('n', 0)})", fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
            fig.colorbar(im, ax=ax, fraction=0.046)
    width = 0.8 / max(len(classes), 1)
    for key, names, label in (("regions", ["TL", "TR", "BL", "BR"], "region gate (mean)"),
                              ("fusion", ["global", "local"], "channel weight (mean)")):
        if not (has_r if key == "regions" else has_f):
            continue
        ax = fig.add_subplot(grid[0, col])
        col += 1
        x = np.arange(len(names))
        for i, c in enumerate(classes):
            vals = by_class[c].get(key)
            if vals is None:
                continue
            ax.bar(x + (i - (len(classes) - 1) / 2) * width, vals, width, label=c,
                   color=str(0.3 + 0.25 * (i % 3)), edgecolor="black", hatch=HATCHES[i % len(HATCHES)])
        ax.set_xticks(x, names)
        ax.set_xlabel("quadrant of the feature map" if key == "regions" else "fusion input branch")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.legend(title="true class", fontsize=7, title_fontsize=7)
    return _png(fig)


# --------------------------------------------------------------------------- comparison

def comparison_png(names: list[str], per_seed: dict[str, dict[str, list[float]]],
                   metrics=("uf1", "uar"), subset_label: str = "Full") -> bytes:
    """Per run: the mean (hatched bar) and each seed (black dots) of UF1 and UAR."""
    fig = _figure(1.1 * len(names) * len(metrics) + 2.0, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    for i, m in enumerate(metrics):
        offs = x + (i - (len(metrics) - 1) / 2) * width
        means = [float(np.mean(per_seed[n][m])) if per_seed[n][m] else np.nan for n in names]
        ax.bar(offs, means, width, label=m.upper(), color=str(0.45 + 0.3 * i), edgecolor="black",
               hatch=HATCHES[(i + 1) % len(HATCHES)])
        for o, n in zip(offs, names):
            vals = per_seed[n][m]
            ax.plot([o] * len(vals), vals, linestyle="none", marker=MARKERS[i], color="black",
                    markersize=4)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_ylabel(f"{subset_label} score (bar: mean, dots: seeds)")
    ax.set_xlabel("run")
    ax.set_ylim(0, 1)
    ax.grid(axis="y", color="0.9")
    ax.legend(fontsize=8)
    return _png(fig)
