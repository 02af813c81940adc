"""Benchmark: one training step of a model preset, eager against bfloat16 and torch.compile.

The LOSO engine trains each fold single-threaded (one fold worker per core), so the step of one
network on one thread is what a run's wall time is made of. For each preset in ``--models``
this times an AdamW training step (batch ``--batch``, 28x28 inputs, channels-last, one
thread) in three forms, each in a fresh network from the same seed:

* ``eager``: float32, as the engine runs by default;
* ``bf16``: bfloat16 autocast (``--amp``; fast only on CPUs with AVX-512 BF16 or AMX);
* ``compile``: ``torch.compile`` of the network (inductor), float32. Its first step, which
  compiles, is reported apart: a LOSO would pay it in every fold worker, and again for every
  new batch size and for evaluation mode.

Repeats go round the forms in turn, so a drifting machine spreads over all of them; it prints
the median samples/s of the timed steps of every repeat, and each form's speed relative to
``eager``. Usage: ``python benchmarks/bench_step.py [--models glfnet_t,glfnet_s,ststnet]
[--steps 20] [--repeats 2] [--batch 64] [--no-compile]``. ``ONEDNN_MAX_CPU_ISA=AVX2`` in the
environment makes oneDNN use its AVX2 kernels on an AVX-512 CPU (to see what an AVX2-only
machine's kernels would do here).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from glfnet.models.registry import create_model


def time_steps(model_name: str, form: str, steps: int, batch: int) -> tuple[float, list[float]]:
    """(seconds of the first step, seconds of each further step) for one fresh network."""
    torch.manual_seed(0)
    model = create_model(model_name).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, foreach=True)
    x = torch.randn(batch, 3, 28, 28).to(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (batch,))
    net = torch.compile(model) if form == "compile" else model

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=form == "bf16"):
            loss = F.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = []
    for _ in range(steps + 1):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times[0], times[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="glfnet_t,glfnet_s,ststnet", help="comma-separated presets")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per repeat (after the first)")
    ap.add_argument("--repeats", type=int, default=2, help="rounds over all forms")
    ap.add_argument("--batch", type=int, default=64, help="batch size (default 64, the engine's)")
    ap.add_argument("--no-compile", action="store_true", help="leave out torch.compile")
    args = ap.parse_args()
    torch.set_num_threads(1)
    forms = ["eager", "bf16"] + ([] if args.no_compile else ["compile"])
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "the CPU's best")
    cpu = platform.processor() or platform.machine()
    print(f"{cpu}, torch {torch.__version__}, 1 thread, oneDNN ISA: {isa}")
    for name in args.models.split(","):
        rates: dict[str, list[float]] = {f: [] for f in forms}
        first: dict[str, list[float]] = {f: [] for f in forms}
        for _ in range(args.repeats):
            for form in forms:
                t_first, times = time_steps(name, form, args.steps, args.batch)
                first[form].append(t_first)
                rates[form].extend(args.batch / t for t in times)
        base = statistics.median(rates["eager"])
        for form in forms:
            rate = statistics.median(rates[form])
            print(
                f"{name:10s} {form:8s} {rate:7.0f} samples/s  x{rate / base:.2f}  "
                f"first step {max(first[form]):.1f} s (slowest repeat)"
            )


if __name__ == "__main__":
    main()
