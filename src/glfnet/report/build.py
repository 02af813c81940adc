"""`glfnet report RUN_DIR`: report.md, a self-contained report.html and figures/ from a run.

Every score printed in ``report.md`` is formatted from ``metrics.json`` (4 decimals, via
:mod:`glfnet.report.tables`); derived numbers (per-subject accuracy, losses, attention
weights, confidences) appear only inside figures and ``figures/per_subject_accuracy.csv``.
Identifiers, paths and configuration values are written as ``code``.

The oracle section exists only when ``metrics.json``'s ``oracle`` is not null; it comes after all
leak-free sections, under the heading ``oracle (test-selected, optimistic)``. Without it, no
oracle number, figure or word appears (``oracle_predictions.csv`` and the folds' oracle
records are never read).

The gallery and attention overlays re-read the run's input flows (``config.yaml``: ``data``,
``labels``); if they are gone or changed (data digest), those sections say so instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from glfnet.data.naming import DB_DISPLAY
from glfnet.errors import GlfnetError
from glfnet.eval.rundir import FIGURES, Metrics, Run, RunDir, load_run
from glfnet.report import figures as F
from glfnet.report.render import Doc, to_html, to_markdown
from glfnet.report.tables import choice_header, choice_rows, fmt_score, results_rows, subset_order

GALLERY_PER_CLASS = 2


def build_report(run_dir: str | Path) -> list[Path]:
    """Write ``report.md``, ``report.html`` and ``figures/*.png`` into ``run_dir``; return the
    two report paths.

    Holds the run directory's lock (:meth:`~glfnet.eval.rundir.RunDir.hold`), so a report is
    refused while a run writes the folder: a resumed run rewrites ``predictions.csv`` before
    ``metrics.json``, and then its own report, which one built beside it could read half-way
    or overwrite with the older results. Re-entrant: a run's own report takes it again."""
    with RunDir(run_dir).hold(create=False):
        run = load_run(run_dir)
        doc, figs, extra = make_document(run)
        return run.dir.write_report(to_markdown(doc), to_html(doc), {**figs, **extra})


def make_document(run: Run) -> tuple[Doc, dict[str, bytes], dict[str, bytes]]:
    """The report as a :class:`Doc`, its figures {relative path: PNG} and extra files."""
    m = run.metrics
    figs: dict[str, bytes] = {}
    extra: dict[str, bytes] = {}
    doc = Doc(f"glfnet report: `{m.model}`, {m.protocol.upper()}")
    doc.p(f"Run directory `{run.path}`; glfnet `{m.glfnet_version or '?'}`.")

    def add_fig(name: str, alt: str, png: bytes, caption: str = "") -> None:
        rel = f"{FIGURES}/{name}.png"
        figs[rel] = png
        doc.img(rel, alt, png, caption)

    _protocol(doc, run)
    if m.selection:
        _selection(doc, m)
    doc.h(2, "Results (leak-free)")
    _scores(doc, add_fig, m, "honest", "")
    _per_subject(doc, add_fig, extra, run)
    _loss_curves(doc, add_fig, run)
    fs, why = _load_inputs(run)
    maps = _load_maps(run)
    picks = _pick(run)
    _gallery(doc, add_fig, run, fs, why, picks)
    _attention(doc, add_fig, run, fs, why, maps, picks)
    if run.has_oracle:
        _oracle(doc, add_fig, m)
    _machine(doc, m)
    return doc, figs, extra


# --------------------------------------------------------------------------- sections


def _code(value) -> str:
    return "`" + str(value).replace("`", "'") + "`"


def _protocol(doc: Doc, run: Run) -> None:
    m, cfg = run.metrics, run.metrics.config or run.config
    doc.h(2, "Protocol")
    size = f"{_count(m.n_samples)} samples in {_count(m.n_folds)} folds"
    if m.protocol == "lodo":
        split = (
            f"Leave-one-database-out over {size}: each fold holds out one whole database "
            "and trains on the others."
        )
    else:
        split = (
            f"Leave-one-subject-out over {size}: each fold holds out one subject and "
            "trains on all other subjects."
        )
    args = cfg.get("model_args") or {}
    model = f"Model {_code(m.model)}" + (f" with options {_code(args)}" if args else "")
    if m.selection:  # glfnet tune: each fold's recipe was chosen, see the next section
        model = "Each fold's recipe chosen by nested selection (next section), its final model"
    stop = (
        "a fixed schedule from the configuration (no early stopping)"
        if not cfg.get("val_subjects")
        else f"early stopping on a fraction {_code(cfg['val_subjects'])} of the *training* "
        "subjects (never the held-out one)"
    )
    held = "database" if m.protocol == "lodo" else "subject"
    training = f"trained for {_code(cfg.get('epochs'))} epochs with {stop}, loss {_code(cfg.get('loss'))}"
    if m.selection:  # each recipe's own options are in config.yaml's menu
        training = "trained as its recipe in the menu says (config.yaml)"
    doc.p(
        f"{split} {model}, {training}. Input normalisation statistics and class weights "
        f"are fitted on each fold's training subjects only. The held-out {held} is predicted "
        "once, after training: no epoch, checkpoint, threshold or setting is chosen with it."
    )
    seeds = ", ".join(str(s) for s in m.seeds)
    spread = (
        f"Scores are the mean ± sample standard deviation over seeds {seeds}; each seed re-trains every fold."
        if len(m.seeds) > 1
        else f"A single seed ({seeds}): no spread over seeds can be given; pass several seeds for mean ± std."
    )
    doc.p(
        "Predictions of all folds are pooled before scoring (MEGC2019 definitions): UF1 is "
        "the mean over classes of the per-class F1 and UAR the mean per-class recall, over "
        f"the classes present in the scored samples. {spread}"
    )
    classes = ", ".join(m.classes)
    dbs = ", ".join(DB_DISPLAY.get(d, d) for d in m.databases)
    digest = run.data_digest
    doc.p(
        f"Input data {_code(run.data_path)}"
        + (f" (digest {_code(digest)})" if digest else "")
        + f"; classes {classes}; databases {dbs}."
    )
    if run.has_oracle:
        doc.note(
            f"This run also recorded, per fold, the epoch with the best accuracy **on the "
            f"held-out subject's own test data**, as several published papers do. Those "
            f"figures are optimistic by construction and appear only in the separate "
            f"section *{m.label('oracle')}* near the end; they are not results.",
            "warning",
        )


def _selection(doc: Doc, m: Metrics) -> None:
    """A ``glfnet tune`` run: how the recipes were chosen and how often each was."""
    sel = m.selection or {}
    doc.h(2, "Nested selection")
    doc.p(
        f"For every outer fold, each recipe of the menu {_code(sel.get('menu_file'))} was scored "
        f"by a {sel.get('inner_folds')}-fold inner cross-validation over that fold's training "
        "subjects only (subject-grouped; every database with enough subjects in each inner fold); the rule "
        f"{_code(sel.get('rule'))} picked one"
        + (
            " (the cheapest recipe within one standard error of the best inner UF1)"
            if sel.get("rule") == "one-se"
            else ""
        )
        + "; the chosen recipe then trained on all the training subjects and predicted the "
        "held-out subject once. `selection.csv` has every fold's inner scores."
    )
    doc.table(choice_header(m), choice_rows(m), "Outer folds that chose each recipe.")


def _count(n: int | None) -> str:
    return "?" if n is None else str(n)


def _scores(doc: Doc, add_fig, m: Metrics, which: str, prefix: str) -> None:
    """Results table, per-seed and per-class tables, confusion matrices of one section."""
    section = m.section(which) or {}
    label = m.label(which)
    rows = results_rows(m, which)
    doc.table(
        ["Subset", "Samples", "UF1", "UAR", "Accuracy"],
        [[r["subset"], r["n"], r["uf1"], r["uar"], r["acc"]] for r in rows],
        label,
    )
    subsets = subset_order(section)
    name = lambda s: DB_DISPLAY.get(s, s)  # noqa: E731
    doc.h(3, f"{prefix}Per seed")
    doc.table(
        ["Subset", "Seed", "UF1", "UAR", "Accuracy"],
        [
            [name(s), r.seed, fmt_score(r.uf1), fmt_score(r.uar), fmt_score(r.acc)]
            for s in subsets
            for r in section[s].per_seed
        ],
    )
    classes = m.classes
    doc.h(3, f"{prefix}Per class (F1 and recall, mean over seeds)")
    doc.table(
        ["Subset"] + [f"F1 {c}" for c in classes] + [f"Recall {c}" for c in classes],
        [[name(s)] + [fmt_score(v) for v in section[s].f1 + section[s].recall] for s in subsets],
        "— : the class has no sample in that subset.",
    )
    doc.h(3, f"{prefix}Confusion matrices")
    full = section["full"].confusion
    doc.table(
        ["true \\ predicted"] + classes,
        [[c] + list(r) for c, r in zip(classes, full)],
        "Full set, counts summed over seeds.",
    )
    panels = [
        (f"{name(s)}" + (f"\n{label}" if which == "oracle" else ""), np.asarray(section[s].confusion))
        for s in subsets
    ]
    tag = "oracle_" if which == "oracle" else ""
    add_fig(
        f"{tag}confusion_counts",
        f"{prefix}confusion matrices, counts",
        F.confusion_png(panels, classes, normalise=False),
        "Counts summed over seeds; rows: true class, columns: predicted class.",
    )
    add_fig(
        f"{tag}confusion_normalised",
        f"{prefix}confusion matrices, row-normalised",
        F.confusion_png(panels, classes, normalise=True),
        "Each row divided by its total: the diagonal is the per-class recall.",
    )


def _per_subject(doc: Doc, add_fig, extra: dict, run: Run) -> None:
    doc.h(2, "Per-subject accuracy")
    pred = run.predictions
    table = (
        pred.assign(correct=(pred["label"] == pred["prediction"]).astype(int))
        .groupby(["database", "subject"], sort=False)
        .agg(correct=("correct", "sum"), n=("correct", "size"))
        .reset_index()
    )
    table["acc"] = table["correct"] / table["n"]
    order = {d: i for i, d in enumerate(subset_order(set(table["database"])))}
    table = table.sort_values(
        ["database", "subject"], key=lambda c: c.map(order) if c.name == "database" else c
    )
    extra[f"{FIGURES}/per_subject_accuracy.csv"] = table.to_csv(index=False).encode()
    doc.p(
        "Accuracy on each held-out subject, pooled over seeds (bars labelled correct/total). "
        "Many subjects have few samples or one class only, which is why scores are computed "
        "on pooled predictions, not averaged per subject. The numbers are in "
        "`figures/per_subject_accuracy.csv`."
    )
    add_fig(
        "per_subject_accuracy",
        "per-subject accuracy",
        F.per_subject_png(table.reset_index(drop=True), DB_DISPLAY),
    )


def _loss_curves(doc: Doc, add_fig, run: Run) -> None:
    doc.h(2, "Training loss")
    log = run.train_log
    if log is None:
        doc.p("The run has no training log (`train_log.csv`), so no loss curves.")
        return
    fold_db = dict(zip(run.predictions["fold"], run.predictions["database"]))
    order = subset_order(set(fold_db.values()))
    fold_db = {f: fold_db[f] for f in sorted(fold_db, key=lambda f: (order.index(fold_db[f]), f))}
    add_fig(
        "loss_curves",
        "training loss per fold",
        F.loss_curves_png(log, fold_db, DB_DISPLAY),
        "Training loss per epoch: thin grey lines are single folds (every seed), the thick "
        "line their mean per database.",
    )


def _load_inputs(run: Run):
    """(FlowSet, None) or (None, reason) for the run's input flows."""
    from glfnet.data.digest import data_digest
    from glfnet.data.flowsets import load_flowset

    data = run.data_path
    if not data:
        return None, "the run does not record where its input data are"
    try:
        fs = load_flowset(data, labels=run.config.get("labels"), skip_bad=True)
    except (GlfnetError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return None, f"the input data {_code(data)} could not be read ({_code(first)})"
    digest = run.data_digest
    if digest and data_digest(fs) != digest:
        return None, (
            f"the input data {_code(data)} have changed since the run (their digest "
            "differs), so the flows shown would not be the ones the model saw"
        )
    return fs, None


def _load_maps(run: Run) -> dict[int, dict[str, dict]]:
    """{seed: {sample_id: {"global", "regions", "fusion", "label"}}} from the fold records."""
    classes = run.metrics.classes
    out: dict[int, dict[str, dict]] = {}
    for seed in run.seeds:
        per = {}
        for rec in run.fold_records(seed):
            maps = rec.maps or {}
            for i, sid in enumerate(rec.test_ids):
                entry: dict[str, Any] = {
                    k: np.asarray(maps[k][i])
                    for k in ("global", "regions", "fusion")
                    if maps.get(k) is not None and i < len(maps[k])
                }
                if entry:
                    entry["label"] = classes[rec.y_true[i]]
                    per[sid] = entry
        if per:
            out[seed] = per
    return out


def _pick(run: Run) -> dict[str, pd.DataFrame]:
    """Gallery samples of the first seed: per true class the most confident correct and the
    most confident wrong predictions."""
    pred = run.predictions
    p = pred[pred["seed"] == run.seeds[0]].copy()
    for key, col in (("p_true", "label"), ("p_pred", "prediction")):  # the model's probability
        p[key] = p.apply(lambda r, col=col: r.get(f"prob_{r[col]}", np.nan), axis=1) if len(p) else []
    ok = p[p["label"] == p["prediction"]].sort_values(["p_true", "sample_id"], ascending=[False, True])
    bad = p[p["label"] != p["prediction"]].sort_values(["p_pred", "sample_id"], ascending=[False, True])
    classes = run.metrics.classes

    def per_class(df):
        parts = [df[df["label"] == c].head(GALLERY_PER_CLASS) for c in classes]
        return pd.concat(parts) if parts else df.head(0)

    return {"correct": per_class(ok), "wrong": per_class(bad)}


def _samples(fs, rows: pd.DataFrame, maps: dict | None) -> list[F.Sample]:
    import torch

    from glfnet.data.transforms import to_centered

    index = {sid: i for i, sid in enumerate(fs.samples["sample_id"])}
    out = []
    for _, r in rows.iterrows():
        i = index.get(r["sample_id"])
        if i is None:
            continue
        flow = to_centered(torch.from_numpy(np.asarray(fs.X[i : i + 1], dtype=np.float32)), fs.encoding)[
            0
        ].numpy()
        conf = r.get("p_pred")
        title = f"{r['sample_id']}\ntrue {r['label']}\npredicted {r['prediction']}" + (
            "" if conf is None or pd.isna(conf) else f" ({conf:.2f})"
        )
        out.append(F.Sample(flow, title, (maps or {}).get(r["sample_id"], {})))
    return out


def _gallery(doc: Doc, add_fig, run: Run, fs, why: str | None, picks: dict) -> None:
    doc.h(2, "Input flows: correct and wrong predictions")
    if fs is None:
        doc.note(f"No gallery: {why}.")
        return
    enc = (
        "per-image min-max encoded (the public release); u and v are shown relative to "
        "each image's median, their scales unknown and unequal"
        if fs.encoding == "minmax"
        else "raw flow in pixels"
    )
    doc.p(
        f"Seed {run.seeds[0]}; per true class the most confident correct and the most "
        f"confident wrong predictions. Top row: u, v as a colour wheel (hue: direction, "
        f"saturation: size relative to the image's largest motion, white: still) with "
        f"arrows; bottom row: optical strain as a heat map. Inputs are {enc}."
    )
    for group, rows in picks.items():
        if rows.empty:
            doc.p(f"No {group} predictions to show.")
            continue
        samples = _samples(fs, rows, None)
        if not samples:
            doc.p(f"The {group} predictions' samples are not in the input data any more.")
            continue
        doc.table(
            ["Sample", "Database", "True", "Predicted"],
            [
                [
                    _code(r["sample_id"]),
                    DB_DISPLAY.get(r["database"], r["database"]),
                    r["label"],
                    r["prediction"],
                ]
                for _, r in rows.iterrows()
            ],
        )
        add_fig(
            f"gallery_{group}",
            f"input flows, {group} predictions",
            F.flow_gallery_png(samples, f"{group} predictions"),
        )


def _attention(doc: Doc, add_fig, run: Run, fs, why: str | None, maps: dict, picks: dict) -> None:
    doc.h(2, "Attention")
    if not maps:
        doc.p(
            f"Model {_code(run.metrics.model)} has no attention modules whose maps the run "
            "kept (GLFNet's global attention, region gates and fusion weights), so there is "
            "nothing to show; Grad-CAM is not computed by this version."
        )
        return
    doc.p(
        "What the trained GLFNet of each fold attends to on its held-out samples (recorded "
        "after training; nothing flows back). The global attention map is the mean attention "
        "each position of the feature map receives; the region gates weight the Local Block's "
        "four quadrants (top-left, top-right, bottom-left, bottom-right, roughly the eyes and "
        "the mouth corners); the fusion weights are the mean channel weights the fusion gives "
        "the global and the local branch. Branches a variant lacks are not shown."
    )
    classes = run.metrics.classes
    by_class = {}
    for c in classes:
        entries = [e for per in maps.values() for e in per.values() if e["label"] == c]
        if not entries:
            continue
        agg = {"n": len(entries)}
        for k in ("global", "regions", "fusion"):
            vals = [e[k] for e in entries if k in e]
            if vals and len({v.shape for v in vals}) == 1:
                agg[k] = np.mean(vals, axis=0)
        by_class[c] = agg
    add_fig(
        "attention_summary",
        "mean attention per true class",
        F.attention_summary_png(by_class, classes),
        "Means over every test sample and seed, per true class.",
    )
    if fs is None:
        doc.note(f"No per-sample overlays: {why}.")
        return
    seed_maps = maps.get(run.seeds[0], {})
    for group, rows in picks.items():
        samples = [s for s in _samples(fs, rows, seed_maps) if s.maps]
        if samples:
            add_fig(
                f"attention_{group}",
                f"attention on {group} predictions",
                F.attention_png(samples, f"attention, {group} predictions"),
                "Grey: flow magnitude; colour and contours (dashed: half, solid: four fifths "
                "of the map's range): global attention; boxed numbers: region gates; title: "
                "fusion channel weights.",
            )


def _oracle(doc: Doc, add_fig, m: Metrics) -> None:
    label = m.label("oracle")
    doc.h(2, label)
    doc.note(
        "Not a result. Each fold's epoch here was picked by its accuracy on the held-out "
        "subject's own test data (HTNet-style), which adds several points on this benchmark. "
        "Quote the leak-free tables above; these figures only show how optimistic "
        "test-selected numbers are.",
        "warning",
    )
    _scores(doc, add_fig, m, "oracle", f"{label}: ")


def _machine(doc: Doc, m: Metrics) -> None:
    doc.h(2, "Run time and machine")
    rows = [["wall-clock time of the run (all invocations)", f"{m.wall_seconds or 0.0:.1f} s"]]
    if m.fold_seconds is not None:
        rows.append(["training and prediction time, summed over folds", f"{m.fold_seconds:.1f} s"])
    rows += [[k, _code(v)] for k, v in m.machine.items()]
    doc.table(["item", "value"], rows)
    cfg = dict(m.config)
    if not m.oracle:  # a run without an oracle section does not mention it at all
        cfg.pop("oracle", None)
    doc.p("Configuration (feed the run's `config.yaml` back with `--config` to reproduce it):")
    doc.table(["option", "value"], [[k, _code(v)] for k, v in cfg.items()])
