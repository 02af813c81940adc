"""`glfnet compare` (paired differences, noise rule) and `glfnet ablate` end to end."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from scipy import stats

from clirun import glfnet as run_cli
from glfnet.config import Config
from glfnet.eval.rundir import SeedScores
from glfnet.report.compare import (
    CompareError,
    compare_runs,
    default_out,
    paired_difference,
    what_differs,
    write_comparison,
)


def per_seed(values: dict[int, float]) -> list[dict]:
    """Per-seed scores as metrics.json holds them."""
    return [{"seed": s, "uf1": v, "uar": v / 2, "acc": v} for s, v in values.items()]


def scores(values: dict[int, float]) -> list[SeedScores]:
    return [SeedScores.from_dict(r) for r in per_seed(values)]


def test_what_differs_reads_older_runs_as_this_version_does():
    """A run written before options were removed (at their no-op values) or added (absent)
    differs from today's run of the same settings in nothing; a real change is named."""
    old = {"model": "glfnet_t", "epochs": 35, "tta": False, "swa_epochs": 0, "swa_lr": 0.01}
    old["model_args"] = {"branch_width": 32, "region_halo": 0}
    new = {"model": "glfnet_t", "epochs": 35, "cb_per_database": False, "model_args": {"branch_width": 32}}
    assert what_differs(old, new) == "" and what_differs(new, old) == ""
    assert (
        what_differs(old, {**new, "epochs": 40, "cb_per_database": True}) == "cb_per_database=True, epochs=40"
    )
    assert what_differs({**old, "tta": True}, new) == "tta=None"


# --------------------------------------------------------------------------- the noise rule


def test_paired_difference_matches_a_paired_t_test():
    base = scores({0: 0.50, 1: 0.60, 2: 0.70})
    other = scores({0: 0.60, 1: 0.65, 2: 0.80, 3: 0.99})  # seed 3 has no partner
    p = paired_difference(base, other, "uf1")
    assert p.seeds == [0, 1, 2]
    np.testing.assert_allclose(p.diffs, [0.10, 0.05, 0.10])
    assert p.mean == pytest.approx(0.25 / 3)
    d = np.array(p.diffs)
    assert p.se == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert p.threshold == pytest.approx(stats.t.ppf(0.975, 2) * p.se)
    ref = stats.ttest_rel([0.60, 0.65, 0.80], [0.50, 0.60, 0.70])
    assert p.p_value == pytest.approx(ref.pvalue)
    assert ref.pvalue < 0.05 and p.exceeds is True
    # a noisy difference of the same mean does not exceed the noise
    noisy = paired_difference(base, scores({0: 0.80, 1: 0.55, 2: 0.70}), "uf1")
    assert noisy.mean == pytest.approx(0.25 / 3) and noisy.exceeds is False


def test_one_common_seed_cannot_estimate_noise_and_none_gives_nothing():
    p = paired_difference(scores({0: 0.5, 1: 0.6}), scores({1: 0.7, 5: 0.1}), "uar")
    assert p.seeds == [1] and p.diffs == pytest.approx([0.05])
    assert p.se is None and p.exceeds is None and p.verdict == "n/a"
    assert paired_difference(scores({0: 0.5}), scores({1: 0.5}), "uf1") is None


def test_constant_differences():
    same = paired_difference(scores({0: 0.5, 1: 0.6}), scores({0: 0.5, 1: 0.6}), "uf1")
    assert same.mean == 0 and same.exceeds is False
    shifted = paired_difference(scores({0: 0.5, 1: 0.6}), scores({0: 0.6, 1: 0.7}), "uf1")
    assert shifted.mean == pytest.approx(0.1) and shifted.exceeds is True


# --------------------------------------------------------------------------- comparisons


def fake_run(path, seeds_uf1: dict[int, float], digest="abc", model="glfnet_s", model_args=None):
    """A run directory as far as compare reads it (metrics.json, config.yaml), as the previous
    version wrote it (a spread of 0.0 for one seed)."""
    path.mkdir(parents=True)
    block = {}
    for subset, shift in (("full", 0.0), ("casme2", 0.05), ("samm", -0.05), ("smic", 0.1)):
        ps = per_seed({s: v + shift for s, v in seeds_uf1.items()})
        vals = [r["uf1"] for r in ps]
        block[subset] = {
            "uf1": float(np.mean(vals)),
            "uar": float(np.mean(vals)) / 2,
            "acc": float(np.mean(vals)),
            "uf1_std": float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0,
            "uar_std": float(np.std(vals, ddof=1)) / 2 if len(vals) > 1 else 0.0,
            "acc_std": 0.0,
            "n": 10,
            "per_seed": ps,
        }
    cfg = {
        "model": model,
        "model_args": model_args or {},
        "loss": "cb",
        "epochs": 5,
        "seeds": list(seeds_uf1),
    }
    (path / "metrics.json").write_text(
        json.dumps(
            {
                "protocol": "loso",
                "model": model,
                "seeds": list(seeds_uf1),
                "honest": block,
                "oracle": None,
                "classes": ["negative", "positive", "surprise"],
                "config": cfg,
            }
        )
    )
    (path / "config.yaml").write_text(f"data_digest: {digest}\n")
    return path


def test_comparison_markdown_holds_the_paired_differences(tmp_path, capsys):
    a = fake_run(tmp_path / "full", {0: 0.50, 1: 0.60, 2: 0.70})
    b = fake_run(tmp_path / "no-local", {0: 0.40, 1: 0.52, 2: 0.61}, model_args={"local_branch": False})
    c = fake_run(tmp_path / "one-seed", {2: 0.75, 7: 0.1})
    d = fake_run(tmp_path / "other-data", {0: 0.5, 1: 0.6}, digest="zzz")
    assert default_out([a, b]) == tmp_path.resolve()
    comp = compare_runs([a, b, c, d])
    assert comp.names == ["full", "no-local", "one-seed", "other-data"]
    assert comp.common_seeds == {"no-local": [0, 1, 2], "one-seed": [2], "other-data": [0, 1]}
    assert any("different input data" in w for w in comp.warnings)
    md_path, html_path = write_comparison(comp, tmp_path / "cmp")
    md = md_path.read_text(encoding="utf-8")
    assert "model_args.local_branch=False" in md
    # no-local - full, Full UF1: -0.10, -0.08, -0.09 (consistent: exceeds the noise)
    row = next(l for l in md.splitlines() if l.startswith("| Full | UF1 | -0.1000, -0.0800, -0.0900"))
    assert "| -0.0900 |" in row and row.rstrip().endswith("| **yes** |")
    p = next(p for p in comp.paired if p.run == "no-local" and p.subset == "full" and p.metric == "uf1")
    np.testing.assert_allclose(p.diffs, [-0.10, -0.08, -0.09], atol=1e-12)
    assert "Common seeds: `2`. One common seed: the seed noise cannot be estimated." in md
    one = [p for p in comp.paired if p.run == "one-seed"]
    assert one and all(p.exceeds is None for p in one)
    html = html_path.read_text(encoding="utf-8")
    assert "http" not in html and all(s.startswith("data:") for s in re.findall(r'src="([^"]*)"', html))
    assert (tmp_path / "cmp" / "comparison_full.png").is_file()
    # the command: Rich tables on the console, files in --out
    code, out, _ = run_cli(capsys, "compare", a, b, "--out", tmp_path / "cli")
    assert code == 0 and "Paired differences versus full" in out and "-0.0900" in out
    assert (tmp_path / "cli" / "comparison.md").is_file()


def test_compare_needs_two_runs_and_real_run_dirs(tmp_path, capsys):
    a = fake_run(tmp_path / "a", {0: 0.5})
    with pytest.raises(CompareError):
        compare_runs([a])
    code, _, err = run_cli(capsys, "compare", a, tmp_path / "missing")
    assert code == 2 and "not a glfnet run directory" in err


def test_a_run_compared_with_itself_is_refused(tmp_path, capsys):
    a = fake_run(tmp_path / "a", {0: 0.5, 1: 0.6})
    b = fake_run(tmp_path / "b", {0: 0.6, 1: 0.7})
    with pytest.raises(CompareError, match="same run directory"):
        compare_runs([a, b, tmp_path / "x" / ".." / "a"])
    code, _, err = run_cli(capsys, "compare", a, a)
    assert code == 2 and "same run directory" in err
    copy = fake_run(tmp_path / "copy", {0: 0.5, 1: 0.6})  # the same results in another folder
    assert any("exactly the results" in w for w in compare_runs([a, copy]).warnings)


def test_runs_on_different_data_get_no_paired_differences(tmp_path, capsys):
    a = fake_run(tmp_path / "a", {0: 0.50, 1: 0.60, 2: 0.70})
    b = fake_run(tmp_path / "b", {0: 0.40, 1: 0.52, 2: 0.61}, digest="other")
    comp = compare_runs([a, b])
    assert not comp.paired and "different input data" in comp.unpaired["b"]
    assert any("no paired differences" in w for w in comp.warnings)
    md = write_comparison(comp, tmp_path / "cmp")[0].read_text(encoding="utf-8")
    block = md.split("### `b` − `a`")[1]
    assert "No paired differences: it was run on different input data" in block
    assert "-0.1000" not in md and "| Full | UF1 |" not in md
    code, out, err = run_cli(capsys, "compare", a, b, "--out", tmp_path / "cli")
    assert code == 0 and "not paired" in out and "-0.1000" not in out
    assert "different input data" in err


def test_compare_json(tmp_path, capsys):
    a = fake_run(tmp_path / "full", {0: 0.50, 1: 0.60, 2: 0.70})
    b = fake_run(tmp_path / "no-local", {0: 0.40, 1: 0.52, 2: 0.61}, model_args={"local_branch": False})
    code, out, _ = run_cli(capsys, "compare", a, b, "--json", "--out", tmp_path / "cmp")
    assert code == 0
    doc = json.loads(out)  # stdout holds the JSON object and nothing else
    assert doc["base"] == "full" and [r["name"] for r in doc["runs"]] == ["full", "no-local"]
    assert doc["runs"][1]["differs"] == "model_args.local_branch=False"
    assert doc["runs"][0]["scores"]["full"]["uf1"] == pytest.approx(0.6)
    p = next(
        p for p in doc["paired"] if p["run"] == "no-local" and p["subset"] == "full" and p["metric"] == "uf1"
    )
    np.testing.assert_allclose(p["diffs"], [-0.10, -0.08, -0.09], atol=1e-12)
    assert p["exceeds"] is True and doc["unpaired"] == {}
    assert sorted(doc["files"]) == sorted(
        str(tmp_path / "cmp" / f) for f in ("comparison.md", "comparison.html")
    )


@pytest.mark.parametrize("std", [None, 0.0], ids=["null", "previous-version-zero"])
def test_one_seed_runs_show_means_without_spread(tmp_path, capsys, std):
    runs = [fake_run(tmp_path / n, {0: v}) for n, v in (("a", 0.5), ("b", 0.6))]
    for r in runs:
        m = json.loads((r / "metrics.json").read_text())
        for block in m["honest"].values():
            block.update(uf1_std=std, uar_std=std, acc_std=std)
        (r / "metrics.json").write_text(json.dumps(m))
    code, out, _ = run_cli(capsys, "compare", *runs, "--out", tmp_path / "cmp")
    md = (tmp_path / "cmp" / "comparison.md").read_text(encoding="utf-8")
    assert code == 0 and "| `a` | 0.5000 |" in md
    rows = [line for line in md.splitlines() if line.startswith("| `")]
    assert rows and not any("±" in line for line in rows) and "0.5000 ±" not in out


# --------------------------------------------------------------------------- ablate


@pytest.fixture(scope="module")
def small_flat(tmp_path_factory, tiny_rows, tiny_flows):
    """One subject per database (the one with most classes): three folds."""
    from glfnet.data.synthflow import write_flat

    keep = []
    for db in sorted({r["database"] for r in tiny_rows}):
        subs = sorted({r["subject"] for r in tiny_rows if r["database"] == db})
        keep.append(
            max(
                subs,
                key=lambda s: (
                    len({r["label"] for r in tiny_rows if r["subject"] == s}),
                    sum(r["subject"] == s for r in tiny_rows),
                ),
            )
        )
    rows = [r for r in tiny_rows if r["subject"] in keep]
    d = tmp_path_factory.mktemp("small")
    write_flat(d, rows, {r["sample_id"]: tiny_flows[r["sample_id"]] for r in rows}, "htnet")
    return d


@pytest.mark.slow
def test_ablate_end_to_end(small_flat, tmp_path, capsys):
    out = tmp_path / "abl"
    code, stdout, _ = run_cli(
        capsys,
        "ablate",
        small_flat,
        "--epochs",
        "1",
        "--seeds",
        "0,1",
        "--out",
        out,
        "--quiet",
        "--no-report",
    )
    assert code == 0
    variants = ["full", "no-local", "no-global", "concat", "sum", "ce-loss", "ststnet"]
    metrics = {v: json.loads((out / v / "metrics.json").read_text()) for v in variants}
    cfg = {v: m["config"] for v, m in metrics.items()}
    assert cfg["full"]["model"] == Config.model and cfg["full"]["model_args"] == {}
    assert cfg["no-local"]["model_args"] == {"local_branch": False}
    assert cfg["no-global"]["model_args"] == {"global_branch": False}
    assert cfg["concat"]["model_args"] == {"fusion": "concat"}
    assert cfg["sum"]["model_args"] == {"fusion": "sum"}
    assert cfg["ce-loss"]["loss"] == "ce" and cfg["full"]["loss"] == "cb"
    assert cfg["ststnet"]["model"] == "ststnet"
    assert all(c["epochs"] == 1 and c["seeds"] == [0, 1] for c in cfg.values())
    assert "Paired differences versus full" in stdout
    md = (out / "comparison.md").read_text(encoding="utf-8")
    for v in variants:
        assert f"| `{v}` |" in md
    # every paired difference printed equals the difference of the two metrics.json files
    for v in variants[1:]:
        block = md.split(f"### `{v}` − `full`")[1].split("###")[0]
        assert "Common seeds: `0, 1`." in block
        for metric in ("uf1", "uar"):
            base = {r["seed"]: r[metric] for r in metrics["full"]["honest"]["full"]["per_seed"]}
            run = {r["seed"]: r[metric] for r in metrics[v]["honest"]["full"]["per_seed"]}
            diffs = ", ".join(f"{run[s] - base[s]:+.4f}" for s in (0, 1))
            assert f"| Full | {metric.upper()} | {diffs} |" in block, (v, metric, diffs)
    assert not (out / "full" / "report.md").exists()
    # resume: finished folds are reused, and this time the reports are written
    folds = sorted((out / "full" / "folds").rglob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in folds]
    code, _, _ = run_cli(
        capsys,
        "ablate",
        small_flat,
        "--epochs",
        "1",
        "--seeds",
        "0,1",
        "--out",
        out,
        "--quiet",
        "--only",
        "full,ststnet",
    )
    assert code == 0
    assert [p.stat().st_mtime_ns for p in folds] == stamps
    for v in ("full", "ststnet"):
        assert (out / v / "report.md").is_file() and (out / v / "report.html").is_file()
    assert "## Attention" in (out / "full" / "report.md").read_text(encoding="utf-8")


def test_ablate_rejects_unknown_variants(small_flat, tmp_path, capsys):
    code, _, err = run_cli(capsys, "ablate", small_flat, "--only", "full,nope", "--out", tmp_path)
    assert code == 2 and "unknown variant" in err and "no-local" in err
