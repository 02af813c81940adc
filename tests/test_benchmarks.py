"""The benchmark scripts run here in a form CI can afford: so the day a GPU
is lent, `benchmarks/bench_gpu.py`'s one prepared call does not fail on its own code."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_bench_gpu_runs_on_the_cpu():
    """Parts 2-4 with `--device cpu`, at a tiny size (part 4, the fold-batched engine, has never
    run on a GPU): the final model reloads to the same probabilities, and every engine setting
    prints a line, figures or the reason it is refused; none fails."""
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_gpu.py"),
        "--device", "cpu", "--skip-loso", "--throughput-models", "ststnet",
        "--engine-models", "ststnet,glfnet_t", "--engine-seeds", "2", "--engine-ensemble", "1",
        "--fold-batch", "1,2", "--amp", "both", "--engine-folds", "2", "--engine-epochs", "1",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "reloaded on cpu and cpu, max |p_cpu - p_cpu| = 0.00e+00" in r.stdout, r.stdout
    assert len([l for l in r.stdout.splitlines() if l.startswith("train ststnet")]) == 2, r.stdout
    lines = [l for l in r.stdout.splitlines() if l.startswith("engine ") and "fold_batch" in l]
    assert len(lines) == 2 * 2 * 2, r.stdout
    assert not [l for l in lines if "FAILED" in l], r.stdout
    for line in lines:
        assert "samples/s" in line or "n/a (ConfigError: `amp` cannot be combined" in line, line
    assert all("samples/s" in l for l in lines if "fold_batch   1" in l or "fp32" in l), r.stdout


@pytest.mark.slow
def test_bench_tune_runs():
    """The nested-selection benchmark on a tiny synthetic set, one epoch per recipe."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_tune.py"), "--scale", "0.1", "--epochs", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "plan: 7 recipes (6 trained)" in r.stdout and "one nested seed" in r.stdout, r.stdout
