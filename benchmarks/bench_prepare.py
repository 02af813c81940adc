"""Per-sample preprocessing throughput of `glfnet prepare` (issue 3 benchmark).

Builds a small CASME II-like raw dataset in a temporary folder (640x480 colour JPEG frames of
``skimage.data.astronaut()`` with a ~185 px face, a subtle local motion and sensor noise,
official layout + coding sheet), then measures

1. the stages of one sample in one process (median over samples, after a warm-up that loads
   the dlib models): read (two JPEG decodes), face (detection + landmarks + the two crops),
   flow (TV-L1 at the 128 px crop), strain (+ resize to 28), write (atomic npz + record);
2. the whole `prepare_cache` run with ``--jobs`` workers: samples per second, wall clock
   including worker start-up, and steady state (after the first sample of each worker).

Usage: ``.venv/bin/python benchmarks/bench_prepare.py [--samples 32] [--jobs 2] [--flow tvl1]``.
The machine's load average is printed: other processes on the 2 cores slow every stage down;
the CPU time per sample (``time.process_time``, one OpenCV thread) is not affected by them
and bounds what ``--jobs`` idle cores can do.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def make_dataset(root: Path, n: int, size=(640, 480), seed: int = 0) -> None:
    from openpyxl import Workbook
    from skimage import data

    rng = np.random.default_rng(seed)
    w, h = size
    # the astronaut's head and shoulders filling the frame: a ~185 px face, as in CASME II
    canvas = cv2.resize(
        cv2.cvtColor(data.astronaut()[20:245, 110:410], cv2.COLOR_RGB2BGR),
        (w, h),
        interpolation=cv2.INTER_CUBIC,
    )
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    wb = Workbook()
    ws = wb.active
    ws.append(
        [
            "Subject",
            "Filename",
            None,
            "OnsetFrame",
            "ApexFrame",
            "OffsetFrame",
            None,
            "Action Units",
            "Estimated Emotion",
        ]
    )
    for i in range(n):
        sub, clip = i % 8 + 1, f"EP{i:02d}_01"
        cx, cy = w / 2 + rng.uniform(-60, 60), h / 2 + rng.uniform(-20, 80)
        amp = rng.uniform(0.5, 2.0)
        bump = np.exp(-(((xx - cx) / 40) ** 2 + ((yy - cy) / 25) ** 2))
        folder = root / "CASME2-RAW" / f"sub{sub:02d}" / clip
        folder.mkdir(parents=True)
        for k, a in ((1, 0.0), (2, 0.5), (3, 1.0), (4, 0.5), (5, 0.0)):
            img = cv2.remap(
                canvas,
                xx - amp * a * bump,
                yy + 0.5 * amp * a * bump,
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            )
            img = np.clip(img + rng.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(folder / f"img{k}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        ws.append([sub, clip, None, 1, 3, 5, None, "12", "happiness"])
    wb.save(root / "CASME2-coding-20140508.xlsx")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--flow", default="tvl1")
    ap.add_argument("--crop", type=int, default=128)
    args = ap.parse_args(argv)

    from glfnet.data.protocols import get_protocol
    from glfnet.data.readers import read_database
    from glfnet.preprocess.face import _models
    from glfnet.preprocess.pipeline import PrepParams, prepare_cache, process_sample

    print(
        f"cpus {os.cpu_count()}, load average before {os.getloadavg()[0]:.2f}, "
        f"OpenCV {cv2.__version__}, flow {args.flow}, crop {args.crop} px"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_dataset(tmp / "raw", args.samples)
        scan = read_database("casme2", tmp / "raw")
        sel = get_protocol("casme2-5").select(scan.samples)
        params = PrepParams(crop_size=args.crop, flow=args.flow)

        # 1. stage breakdown, one process (the CLI's workers use one OpenCV thread each)
        _models()
        cv2.setNumThreads(1)
        stages = {k: [] for k in ("read", "face", "flow", "strain", "write", "total")}
        faces = 0
        cpu = []
        for s, label in sel.included:
            c0 = time.process_time()
            row = process_sample(s, label, params, tmp / "single")
            cpu.append(time.process_time() - c0)
            assert row["status"] == "ok", row["anomalies"]
            faces += row["face"] == "found"
            for k in stages:
                stages[k].append(row["_timings"][k])
        med = {k: statistics.median(v) * 1000 for k, v in stages.items()}
        print(f"\none process, {len(sel.included)} samples, faces found {faces}; median ms per sample:")
        print("  " + "  ".join(f"{k} {v:.1f}" for k, v in med.items()))
        cpu_ms = statistics.median(cpu) * 1000
        print(
            f"  -> {1000 / med['total']:.2f} samples/s per core; CPU time {cpu_ms:.1f} ms per "
            f"sample, i.e. at most {args.jobs * 1000 / cpu_ms:.1f} samples/s on {args.jobs} "
            "idle cores"
        )

        # 2. the whole run in parallel
        cv2.setNumThreads(-1)
        done_at: list[float] = []
        t0 = time.perf_counter()
        res = prepare_cache(
            sel,
            tmp / "par",
            params,
            jobs=args.jobs,
            progress=lambda i, n, row: done_at.append(time.perf_counter()) if row is not None else None,
        )
        wall = time.perf_counter() - t0
        n = len(sel.included)
        assert res.status_counts()["ok"] == n
        steady = (
            (len(done_at) - args.jobs) / (done_at[-1] - done_at[args.jobs - 1])
            if len(done_at) > args.jobs + 1
            else float("nan")
        )
        print(
            f"\n--jobs {args.jobs}: {n} samples in {wall:.2f} s = {n / wall:.2f} samples/s "
            f"(incl. worker start-up); steady state {steady:.2f} samples/s"
        )
        print(f"load average after {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
