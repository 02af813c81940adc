"""A flow set's fingerprint: which samples, with which labels and which inputs.

A run directory and a model directory record it, so that a resumed run refuses other data and a
report can tell whether the input flows it re-reads are still the ones the model saw.
"""

from __future__ import annotations

import hashlib

import numpy as np

from glfnet.data.flowsets import FlowSet


def data_digest(fs: FlowSet) -> str:
    """16 hex digits of SHA-1 over the sample ids, their labels and the input array."""
    h = hashlib.sha1()
    h.update("\n".join(fs.samples["sample_id"] + "\t" + fs.samples["label"]).encode())
    h.update(np.ascontiguousarray(fs.X).tobytes())
    return h.hexdigest()[:16]
