"""Export a cache as the STSTNet 28x28 PNG layout (reference section 3), for other code.

Flat layout: one 8-bit RGB PNG per sample named ``<subject>_<clip> .png`` (with the space
before ``.png``, as in the public release), channels R, G, B = u, v, strain, each min-max
scaled per image to exactly 0..255 (``round(255 (x - min) / (max - min))``; a constant
channel becomes 0), plus ``labels.csv`` with the release's header
``dataset,sub,filename_o,label,apex,imagename,sub_filename`` (label = index of the class in
the cache's class list, e.g. 0 negative, 1 positive, 2 surprise; apex and sub_filename
empty). A cache stored at another size is resized to 28 first.
"""

from __future__ import annotations

import io as _io
from pathlib import Path

import pandas as pd

from glfnet import io
from glfnet.data import cache
from glfnet.data.flowsets import encode_flow_image
from glfnet.preprocess.flow import resize_flow

PNG_SIZE = 28
LABEL_FILE = "labels.csv"
LABEL_COLUMNS = ["dataset", "sub", "filename_o", "label", "apex", "imagename", "sub_filename"]


def png_name(sample_id: str) -> str:
    return f"{sample_id} .png"


def export_png(cache_dir: str | Path, out_dir: str | Path, size: int = PNG_SIZE) -> Path:
    """Write every ``ok`` sample of a cache as a PNG plus ``labels.csv``; returns the CSV path."""
    from PIL import Image

    cache_dir, out_dir = Path(cache_dir), Path(out_dir).expanduser()
    meta = cache.read_meta(cache_dir)
    manifest = cache.read_manifest(cache_dir)
    classes = list(meta["classes"])
    rows = []
    for r in manifest[manifest["status"] == "ok"].to_dict("records"):
        flow = cache.load_flow(cache_dir / r["file"])
        if flow.shape[1:] != (size, size):
            flow = resize_flow(flow, size)
        buf = _io.BytesIO()
        Image.fromarray(encode_flow_image(flow), mode="RGB").save(buf, format="PNG")
        name = png_name(r["sample_id"])
        io.write_bytes(out_dir / name, buf.getvalue())
        rows.append(
            {
                "dataset": r["database"],
                "sub": r["subject"],
                "filename_o": r["clip"],
                "label": classes.index(r["label"]),
                "apex": "",
                "imagename": name,
                "sub_filename": "",
            }
        )
    path = out_dir / LABEL_FILE
    io.write_csv(path, pd.DataFrame(rows, columns=LABEL_COLUMNS))
    return path
