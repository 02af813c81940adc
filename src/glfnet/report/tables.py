"""Results tables from a run's :class:`~glfnet.eval.rundir.Metrics` (shared by the console and
the written reports)."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from glfnet.data.naming import DB_DISPLAY
from glfnet.eval.rundir import SCORE_KEYS, Metrics

if TYPE_CHECKING:
    from rich.table import Table

# Display order of the composite's subsets; other databases follow alphabetically.
SUBSET_ORDER = ("full", "smic", "casme2", "samm")


def subset_order(section: Collection[str]) -> list[str]:
    """The subset names of ``section`` (a metrics section or any collection of names) in
    display order."""
    known = [s for s in SUBSET_ORDER if s in section]
    return known + sorted(s for s in section if s not in SUBSET_ORDER)


def fmt_score(value: float | None) -> str:
    """A score with 4 decimals; "—" where there is none."""
    return "—" if value is None else f"{value:.4f}"


def fmt_pm(mean: float, std: float | None) -> str:
    """``mean ± std`` with 4 decimals; the mean alone where there is no spread (one seed)."""
    return f"{mean:.4f}" if std is None else f"{mean:.4f} ± {std:.4f}"


def results_rows(metrics: Metrics, which: str = "honest") -> list[dict[str, Any]]:
    """One row per subset: name, n, uf1, uar, acc (formatted 'mean ± std' over seeds)."""
    section = metrics.section(which)
    if not section:
        return []
    return [
        {
            "subset": DB_DISPLAY.get(s, s),
            "n": section[s].n,
            **{k: fmt_pm(*section[s].mean_std(k)) for k in SCORE_KEYS},
        }
        for s in subset_order(section)
    ]


def rich_table(metrics: Metrics, which: str = "honest") -> Table:
    """The results table of one section as a Rich table."""
    from rich.table import Table

    title = "Leak-free results" if which == "honest" else "Oracle (test-selected, optimistic)"
    t = Table(
        title=f"{title}: {metrics.model}, {metrics.protocol.upper()}, "
        f"seeds {','.join(map(str, metrics.seeds))}",
        caption=metrics.labels.get(which),
    )
    for col in ("subset", "samples", "UF1", "UAR", "accuracy"):
        t.add_column(col, justify="left" if col == "subset" else "right")
    for r in results_rows(metrics, which):
        t.add_row(r["subset"], str(r["n"]), r["uf1"], r["uar"], r["acc"])
    return t


def choice_rows(metrics: Metrics) -> list[list[str]]:
    """A ``glfnet tune`` run's choices: per recipe (menu order), how many outer folds chose it
    per seed and in all, and its mean inner UF1; [] for other runs."""
    sel = metrics.selection or {}
    per_seed = sel.get("choices_per_seed", {})
    inner = sel.get("inner_uf1", {})
    return [
        [name, *[str(per_seed[s].get(name, 0)) for s in per_seed], str(sel["choices"].get(name, 0))]
        + [fmt_score(inner.get(name))]
        for name in sel.get("menu", [])
    ]


def choice_header(metrics: Metrics) -> list[str]:
    """The columns of :func:`choice_rows`."""
    seeds = (metrics.selection or {}).get("choices_per_seed", {})
    return ["recipe", *[f"seed {s}" for s in seeds], "all seeds", "mean inner UF1"]


def choices_text(metrics: Metrics) -> str:
    """``glfnet-default 120 · ststnet 70`` (recipes chosen at least once, most first); "" for
    runs without nested selection."""
    counts = (metrics.selection or {}).get("choices", {})
    ranked = sorted(((n, c) for n, c in counts.items() if c), key=lambda t: -t[1])
    return " · ".join(f"{n} {c}" for n, c in ranked)
