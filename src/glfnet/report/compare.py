"""`glfnet compare RUN_A RUN_B ...`: leak-free results of several runs side by side, with
per-seed paired differences against the first run.

Only the leak-free ("honest") section of each ``metrics.json`` is read; oracle figures are
never compared.

**Noise rule.** Runs are paired by seed (same seed: same folds, same seeded training order,
so seed-to-seed variation common to both runs cancels). For every subset and metric let
``d_s = run_s - base_s`` over the k seeds both runs share. A difference *exceeds the seed
noise* when a two-sided paired t-test over those seeds rejects "no difference" at
``if TYPE_CHECKING:
    from rich.table import Table

ALPHA = 0.05``, i.e. ``|mean(d)| > t_{0.975, k-1} * SE`` with ``SE = sd(d) / sqrt(k)``
(sample sd, ddof=1). With k = 1 the noise cannot be estimated (shown as "n/a"); with no
common seed there is no paired difference. If every seed moved by exactly the same non-zero
amount (SE = 0) the difference counts as exceeding the noise. Several subsets and metrics
are tested at once, uncorrected: treat a lone "yes" among many as a lead, not a finding.

**What is not paired.** A run on other input data (data digests differ), under another
protocol or with other classes than the base is shown side by side but gets no paired
differences: its seeds do not see the same samples and folds, so nothing cancels. The same
run directory given twice is refused; two runs with identical results are flagged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glfnet import io
from glfnet.data.naming import DB_DISPLAY
from glfnet.errors import GlfnetError
from glfnet.eval.rundir import Run, SeedScores, load_run
from glfnet.report.render import Doc, to_html, to_markdown
from glfnet.report.tables import choices_text, fmt_pm, subset_order

if TYPE_CHECKING:
    from rich.table import Table

ALPHA = 0.05
METRICS = ("uf1", "uar")
NOISE_RULE = (
    "A difference exceeds the seed noise when a two-sided paired t-test over the "
    "common seeds rejects 'no difference' at level 0.05: |mean difference| > "
    "t(0.975, k−1) × SE, SE = sample sd of the per-seed differences / √k. With one "
    "common seed the noise cannot be estimated (n/a). Tests are not corrected for "
    "the number of subsets and metrics compared."
)


class CompareError(GlfnetError):
    """Runs that cannot be compared as asked."""


@dataclass
class Paired:
    """Per-seed paired difference ``run - base`` for one subset and metric."""

    run: str
    subset: str
    metric: str
    seeds: list[int]
    diffs: list[float]
    mean: float
    se: float | None  # None with fewer than two seeds
    threshold: float | None  # t_{1-alpha/2, k-1} * SE
    p_value: float | None
    exceeds: bool | None  # None: noise not estimable

    @property
    def verdict(self) -> str:
        return {True: "yes", False: "no", None: "n/a"}[self.exceeds]


def paired_difference(
    base_per_seed: Sequence[SeedScores],
    run_per_seed: Sequence[SeedScores],
    metric: str,
    run: str = "",
    subset: str = "",
) -> Paired | None:
    """Paired difference over the seeds both ``per_seed`` lists share (None if none)."""
    from scipy import stats

    base = {r.seed: v for r in base_per_seed if (v := r.get(metric)) is not None}
    other = {r.seed: v for r in run_per_seed if (v := r.get(metric)) is not None}
    seeds = [s for s in other if s in base]
    if not seeds:
        return None
    diffs = [other[s] - base[s] for s in seeds]
    k = len(diffs)
    mean = math.fsum(diffs) / k
    if k < 2:
        return Paired(run, subset, metric, seeds, diffs, mean, None, None, None, None)
    sd = math.sqrt(math.fsum((d - mean) ** 2 for d in diffs) / (k - 1))
    se = sd / math.sqrt(k)
    t_crit = float(stats.t.ppf(1 - ALPHA / 2, k - 1))
    if se < 1e-12:
        exceeds = abs(mean) > 1e-12
        p = 0.0 if exceeds else 1.0
        se = 0.0
    else:
        p = float(2 * stats.t.sf(abs(mean) / se, k - 1))
        exceeds = abs(mean) > t_crit * se
    return Paired(run, subset, metric, seeds, diffs, mean, se, t_crit * se, p, bool(exceeds))


@dataclass
class Comparison:
    """Runs side by side: their names, the subsets shown, per run the seeds it shares with the
    base, the paired differences, the runs not paired with the base (and why) and warnings."""

    runs: list[Run]
    names: list[str]
    subsets: list[str]
    common_seeds: dict[str, list[int]] = field(default_factory=dict)
    paired: list[Paired] = field(default_factory=list)
    unpaired: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.names[0]

    def to_dict(self) -> dict[str, Any]:
        """The comparison as plain JSON-ready data (what ``glfnet compare --json`` prints)."""
        base_cfg = self.runs[0].metrics.config
        runs = []
        for i, (name, r) in enumerate(zip(self.names, self.runs)):
            honest = r.metrics.honest
            runs.append(
                {
                    "name": name,
                    "path": str(r.path),
                    "model": r.metrics.model,
                    "protocol": r.metrics.protocol,
                    "seeds": r.seeds,
                    "differs": None if i == 0 else what_differs(base_cfg, r.metrics.config),
                    "scores": {
                        s: {k: v for m in METRICS for k, v in zip((m, f"{m}_std"), honest[s].mean_std(m))}
                        for s in self.subsets
                        if s in honest
                    },
                }
            )
        return {
            "base": self.base,
            "alpha": ALPHA,
            "runs": runs,
            "common_seeds": self.common_seeds,
            "paired": [asdict(p) for p in self.paired],
            "unpaired": self.unpaired,
            "warnings": self.warnings,
        }


def _names(runs: list[Run]) -> list[str]:
    names = [r.name for r in runs]
    if len(set(names)) < len(names):  # same folder name in different places
        names = [f"{r.path.parent.name}/{r.name}" for r in runs]
    if len(set(names)) < len(names):
        names = [str(r.path) for r in runs]
    return names


def _load(paths: Sequence[str | Path]) -> list[Run]:
    if len(paths) < 2:
        raise CompareError(
            "give at least two run directories to compare (the first is the base of the paired differences)."
        )
    seen: dict[Path, str | Path] = {}
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise CompareError(
                f"{p} is the same run directory as {seen[key]}: a run compared "
                "with itself has no differences. Give two different runs."
            )
        seen[key] = p
    return [load_run(p) for p in paths]


def why_unpaired(base: Run, run: Run) -> str | None:
    """Why ``run``'s seeds cannot be paired with ``base``'s (None when they can)."""
    if run.metrics.protocol != base.metrics.protocol:
        return (
            f"it uses protocol {run.metrics.protocol}, the base {base.metrics.protocol}, so "
            "its folds are not the base's"
        )
    d0, d1 = base.data_digest, run.data_digest
    if d0 and d1 and d0 != d1:
        return (
            "it was run on different input data than the base (their data digests differ), "
            "so a seed does not see the same samples in both runs"
        )
    if run.metrics.classes != base.metrics.classes:
        return "its classes differ from the base's, so its scores are over other labels"
    return None


def _identical(comp: Comparison) -> None:
    """Warn about runs whose results are the same as an earlier run's (e.g. a copied run)."""
    for i in range(len(comp.runs)):
        for j in range(i + 1, len(comp.runs)):
            a, b = comp.runs[i], comp.runs[j]
            if a.metrics.honest == b.metrics.honest and a.metrics.config == b.metrics.config:
                comp.warnings.append(
                    f"{comp.names[j]} holds exactly the results and "
                    f"configuration of {comp.names[i]} (the same run copied?): "
                    "its differences to it are all zero."
                )


def compare_runs(paths: Sequence[str | Path], names: list[str] | None = None) -> Comparison:
    """Load the runs and compute the paired differences of every run against the first."""
    runs = _load(paths)
    names = list(names) if names else _names(runs)
    subsets = subset_order({s for r in runs for s in r.metrics.honest})
    comp = Comparison(runs, names, subsets)
    base = runs[0]
    _identical(comp)
    for run, name in zip(runs[1:], names[1:]):
        comp.common_seeds[name] = [s for s in run.seeds if s in base.seeds]
        why = why_unpaired(base, run)
        if why:
            comp.unpaired[name] = why
            comp.warnings.append(f"{name}: no paired differences with {names[0]}: {why}.")
            continue
        for subset in subsets:
            a, b = base.metrics.honest.get(subset), run.metrics.honest.get(subset)
            if not a or not b:
                continue
            for metric in METRICS:
                p = paired_difference(a.per_seed, b.per_seed, metric, name, subset)
                if p is not None:
                    comp.paired.append(p)
    return comp


def _settled(cfg: dict) -> dict:
    """``cfg`` as this version reads it: options added since at their defaults, removed ones
    at the value where they changed nothing left out (so they are no difference)."""
    from dataclasses import MISSING, fields

    from glfnet import removed
    from glfnet.config import Config

    defaults = {f.name: f.default for f in fields(Config) if f.default is not MISSING}
    return removed.noops_dropped(defaults | cfg)


def what_differs(base_cfg: dict, cfg: dict) -> str:
    """Configuration keys that differ from the base run, ``key=value`` (seeds and run-only
    keys left out; runs of earlier versions read as this version reads them)."""
    from glfnet.config import Config

    skip = set(Config.RUN_ONLY)
    base_cfg, cfg = _settled(base_cfg), _settled(cfg)
    out = []
    for k in sorted(set(base_cfg) | set(cfg)):
        if k in skip or base_cfg.get(k) == cfg.get(k):
            continue
        a, b = base_cfg.get(k), cfg.get(k)
        if isinstance(a, dict) or isinstance(b, dict):
            a, b = a or {}, b or {}
            out += [f"{k}.{kk}={b.get(kk)!r}" for kk in sorted(set(a) | set(b)) if a.get(kk) != b.get(kk)]
        else:
            out.append(f"{k}={b!r}")
    return ", ".join(out)


# --------------------------------------------------------------------------- rendering


def _sign(v: float) -> str:
    return f"{v:+.4f}"


def _cell(run: Run, subset: str, metric: str) -> str:
    s = run.metrics.honest.get(subset)
    return "—" if not s else fmt_pm(*s.mean_std(metric))


def _runs_section(doc: Doc, comp: Comparison) -> bytes:
    """The runs table, one mean ± std table per metric and the Full-set figure (returned)."""
    from glfnet.report import figures as F

    base = comp.runs[0]
    rows = []
    for i, (n, r) in enumerate(zip(comp.names, comp.runs)):
        diff = what_differs(base.metrics.config, r.metrics.config)
        chosen = choices_text(r.metrics)
        rows.append(
            [
                f"`{n}`",
                f"`{r.metrics.model}`" + (f" (chose {chosen})" if chosen else ""),
                "(base)" if i == 0 else (f"`{diff}`" if diff else "nothing"),
                f"`{','.join(map(str, r.seeds))}`",
                r.metrics.protocol.upper(),
                f"`{r.path}`",
            ]
        )
    doc.table(["Run", "Model", "Differs from the base", "Seeds", "Protocol", "Directory"], rows)
    for metric in METRICS:
        doc.h(2, f"{metric.upper()} (mean ± std over seeds)")
        doc.table(
            ["Run"] + [DB_DISPLAY.get(s, s) for s in comp.subsets],
            [[f"`{n}`"] + [_cell(r, s, metric) for s in comp.subsets] for n, r in zip(comp.names, comp.runs)],
        )
    per_seed = {
        n: {
            m: [v for row in r.metrics.honest["full"].per_seed if (v := row.get(m)) is not None]
            for m in METRICS
        }
        for n, r in zip(comp.names, comp.runs)
    }
    png = F.comparison_png(comp.names, per_seed)
    doc.img(
        "comparison_full.png",
        "Full-set UF1 and UAR per run",
        png,
        "Full set: bars are means over seeds, dots single seeds.",
    )
    return png


def _paired_section(doc: Doc, comp: Comparison, name: str) -> None:
    """The paired differences of one run versus the base (or why there are none)."""
    seeds = comp.common_seeds.get(name, [])
    doc.h(3, f"`{name}` − `{comp.base}`")
    if name in comp.unpaired:
        doc.p(f"No paired differences: {comp.unpaired[name]}.")
        return
    if not seeds:
        doc.p("No seed in common with the base run: no paired differences.")
        return
    doc.p(
        f"Common seeds: `{', '.join(map(str, seeds))}`."
        + (" One common seed: the seed noise cannot be estimated." if len(seeds) == 1 else "")
    )
    doc.table(
        ["Subset", "Metric", "Per seed (run − base)", "Mean", "SE", "Threshold", "Exceeds seed noise"],
        [
            [
                DB_DISPLAY.get(p.subset, p.subset),
                p.metric.upper(),
                ", ".join(_sign(d) for d in p.diffs),
                _sign(p.mean),
                "—" if p.se is None else f"{p.se:.4f}",
                "—" if p.threshold is None else f"{p.threshold:.4f}",
                f"**{p.verdict}**" if p.exceeds else p.verdict,
            ]
            for p in comp.paired
            if p.run == name
        ],
        "Threshold: t(0.975, k−1) × SE over the k common seeds.",
    )


def comparison_doc(comp: Comparison) -> tuple[Doc, bytes]:
    """The comparison as a :class:`Doc` and its Full-set figure (PNG)."""
    doc = Doc(f"Comparison of {len(comp.runs)} runs")
    doc.p(
        f"Leak-free results only (oracle figures are never compared). Paired differences are "
        f"taken against the first run, `{comp.base}`."
    )
    for w in comp.warnings:
        doc.note(w, "warning")
    doc.h(2, "Runs")
    png = _runs_section(doc, comp)
    doc.h(2, f"Paired differences versus `{comp.base}`")
    doc.p(NOISE_RULE)
    for name in comp.names[1:]:
        _paired_section(doc, comp, name)
    return doc, png


def default_out(paths: Sequence[str | Path]) -> Path:
    """The folder that holds the runs if they share one, else ``./comparison``."""
    parents = {Path(p).resolve().parent for p in paths}
    return parents.pop() if len(parents) == 1 else Path("comparison")


def write_comparison(comp: Comparison, out: str | Path) -> list[Path]:
    """Write ``comparison.md``, ``comparison.html`` and ``comparison_full.png`` into ``out``."""
    out = Path(out)
    doc, png = comparison_doc(comp)
    io.write_bytes(out / "comparison_full.png", png)
    return [
        io.write_text(out / "comparison.md", to_markdown(doc)),
        io.write_text(out / "comparison.html", to_html(doc)),
    ]


def _score_tables(comp: Comparison) -> list[Table]:
    from rich.markup import escape
    from rich.table import Table

    tables = []
    for m in METRICS:
        t = Table(title=f"Leak-free {m.upper()} (mean ± std over seeds)")
        t.add_column("run", overflow="fold")
        t.add_column("seeds", overflow="fold")
        for s in comp.subsets:
            t.add_column(DB_DISPLAY.get(s, s), justify="right", overflow="fold")
        for n, r in zip(comp.names, comp.runs):
            chosen = choices_text(r.metrics)
            name = escape(n) + (f" (tune: {escape(chosen)})" if chosen else "")
            t.add_row(name, ",".join(map(str, r.seeds)), *[_cell(r, s, m) for s in comp.subsets])
        tables.append(t)
    return tables


def _rich_cell(p: Paired | None) -> str:
    if p is None:
        return "—"
    text = _sign(p.mean) + ("" if p.se is None else f" ± {p.se:.4f}")
    return f"[bold]{text} *[/bold]" if p.exceeds else text + (" n/a" if p.exceeds is None else "")


def _paired_table(comp: Comparison) -> Table:
    from rich.markup import escape
    from rich.table import Table

    d = Table(
        title=f"Paired differences versus {escape(comp.base)} (run − base over common seeds)",
        caption="* exceeds the seed noise (paired t-test, 0.05); n/a: one common seed",
    )
    d.add_column("run", overflow="fold")
    d.add_column("common seeds", overflow="fold")
    d.add_column("subset", overflow="fold")
    for m in METRICS:
        d.add_column(f"Δ{m.upper()} (± SE)", justify="right", overflow="fold")
    for name in comp.names[1:]:
        seeds = comp.common_seeds.get(name, [])
        if name in comp.unpaired or not seeds:
            why = "not paired" if name in comp.unpaired else "none"
            d.add_row(escape(name), why, "—", *["—"] * len(METRICS))
            continue
        for s in comp.subsets:
            ps = {p.metric: p for p in comp.paired if p.run == name and p.subset == s}
            if ps:
                d.add_row(
                    escape(name),
                    ",".join(map(str, seeds)),
                    DB_DISPLAY.get(s, s),
                    *[_rich_cell(ps.get(m)) for m in METRICS],
                )
    return d


def rich_tables(comp: Comparison) -> list[Table]:
    """Rich tables: UF1 and UAR per run (mean ± std), and paired differences versus the base."""
    return _score_tables(comp) + [_paired_table(comp)]
