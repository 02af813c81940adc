"""Apex choice when the annotation has none (SMIC) or an invalid one (reference sections 5, 6).

The label is never used. Two rules:

``midpoint``   the frame on disk nearest to (onset + offset) / 2 (ties: the earlier one).
``flow-peak``  the frame whose flow from the onset has the largest mean magnitude over the
               face crop. The search uses Farneback flow on the same crops as the final
               flow (TV-L1 on every frame would cost 0.15-0.3 s per frame); when the clip has more
               than ``MAX_CANDIDATES`` frames, evenly spaced candidates are scored first, then
               the frames between the best candidate's neighbours.

An annotated apex is *valid* when it is a number, strictly after the onset used, not after the
offset, and its frame is on disk; otherwise the rule above replaces it and the sample's
anomalies say so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from glfnet.preprocess.flow import compute_flow, mean_magnitude

APEX_RULES = ("midpoint", "flow-peak")
MAX_CANDIDATES = 48


def midpoint(numbers: Sequence[int], onset: int, offset: int) -> int | None:
    """The available frame number in (onset, offset] nearest to their middle, or None."""
    cands = [n for n in numbers if onset < n <= offset]
    if not cands:
        return None
    mid = (onset + offset) / 2
    return min(cands, key=lambda n: (abs(n - mid), n))


def annotated_apex_problem(
    apex: int | None, onset: int, offset: int | None, numbers: Sequence[int]
) -> str | None:
    """Why an annotated apex cannot be used, or None when it is valid."""
    if apex is None:
        return "no usable apex in the annotation"
    if apex <= onset:
        return f"apex {apex} is not after the onset {onset}"
    if offset is not None and apex > offset:
        return f"apex {apex} is after the offset {offset}"
    if apex not in set(numbers):
        return f"apex frame {apex} is not on disk"
    return None


def flow_peak(
    n_frames: int, crop: Callable[[int], np.ndarray], method: str = "farneback"
) -> tuple[int, list[float]]:
    """Index (1..n-1) of the frame with the largest mean flow magnitude from frame 0.

    ``crop(i)`` returns the i-th frame's grayscale face crop (read lazily, so long clips only
    load the frames that are scored). Returns (index, scores of the scored frames).
    """
    if n_frames < 2:
        raise ValueError("flow-peak needs at least two frames")
    onset = crop(0)
    scores: dict[int, float] = {}

    def score(i: int) -> float:
        if i not in scores:
            scores[i] = mean_magnitude(compute_flow(onset, crop(i), method))
        return scores[i]

    idx = list(range(1, n_frames))
    if len(idx) <= MAX_CANDIDATES:
        best = max(idx, key=lambda i: (score(i), -i))
    else:
        coarse = sorted(set(np.linspace(1, n_frames - 1, MAX_CANDIDATES).round().astype(int)))
        best = max(coarse, key=lambda i: (score(i), -i))
        pos = coarse.index(best)
        lo = coarse[pos - 1] if pos > 0 else 1
        hi = coarse[pos + 1] if pos + 1 < len(coarse) else n_frames - 1
        best = max(range(lo, hi + 1), key=lambda i: (score(i), -i))
    return best, [scores[i] for i in sorted(scores)]
