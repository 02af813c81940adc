"""Results tables from ``metrics.json`` (shared by the console and the written reports)."""

from __future__ import annotations

from glfnet.data.naming import DB_DISPLAY

# Display order of the composite's subsets; other databases follow alphabetically.
SUBSET_ORDER = ("full", "smic", "casme2", "samm")


def subset_order(section) -> list[str]:
    """The subset names of ``section`` (a metrics section or any collection of names) in
    display order."""
    known = [s for s in SUBSET_ORDER if s in section]
    return known + sorted(s for s in section if s not in SUBSET_ORDER)


def fmt_pm(mean: float, std: float, n_seeds: int) -> str:
    return f"{mean:.4f} ± {std:.4f}" if n_seeds > 1 else f"{mean:.4f}"


def results_rows(metrics: dict, which: str = "honest") -> list[dict]:
    """One row per subset: name, n, uf1, uar, acc (formatted 'mean ± std' over seeds)."""
    section = metrics.get(which)
    if not section:
        return []
    k = len(metrics.get("seeds", [0]))
    return [{"subset": DB_DISPLAY.get(s, s), "n": section[s]["n"],
             "uf1": fmt_pm(section[s]["uf1"], section[s]["uf1_std"], k),
             "uar": fmt_pm(section[s]["uar"], section[s]["uar_std"], k),
             "acc": fmt_pm(section[s]["acc"], section[s].get("acc_std", 0.0), k)}
            for s in subset_order(section)]


def rich_table(metrics: dict, which: str = "honest"):
    from rich.table import Table

    labels = metrics.get("labels", {})
    title = ("Leak-free results" if which == "honest" else "Oracle (test-selected, optimistic)")
    seeds = metrics.get("seeds", [])
    t = Table(title=f"{title}: {metrics['model']}, {metrics['protocol'].upper()}, "
                    f"seeds {','.join(map(str, seeds))}",
              caption=labels.get(which))
    for col in ("subset", "samples", "UF1", "UAR", "accuracy"):
        t.add_column(col, justify="left" if col == "subset" else "right")
    for r in results_rows(metrics, which):
        t.add_row(r["subset"], str(r["n"]), r["uf1"], r["uar"], r["acc"])
    return t
