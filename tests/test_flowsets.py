import json

import numpy as np
import pytest
from PIL import Image
from tests.conftest import SMIC_DEV

from glfnet.data import cache
from glfnet.data.flowsets import encode_flow_image, load_flowset
from glfnet.data.synthflow import write_flat, write_tree
from glfnet.errors import DataError


def test_flat_htnet_csv(tiny_set, tiny_rows):
    assert len(tiny_set) == len(tiny_rows)
    assert tiny_set.kind == "flat" and tiny_set.encoding == "minmax"
    assert tiny_set.X.shape[1:] == (3, 28, 28)
    assert tiny_set.X.min() >= 0.0 and tiny_set.X.max() <= 1.0
    want = {r["sample_id"]: r["label"] for r in tiny_rows}
    got = dict(zip(tiny_set.samples["sample_id"], tiny_set.samples["label"]))
    assert got == want
    assert set(tiny_set.samples["database"]) == {"casme2", "samm", "smic"}


def test_file_names_have_the_release_space(flat_dir):
    names = [p.name for p in flat_dir.glob("*.png")]
    assert names and all(n.endswith(" .png") for n in names)


def test_megc_headerless_csv_same_set(tmp_path, tiny_rows, tiny_flows, tiny_set):
    csv_path = write_flat(tmp_path, tiny_rows, tiny_flows, "megc")
    text = csv_path.read_text()
    assert "\n\n" in text and "dataset" not in text  # blank lines, no header
    assert any(line.startswith("samm,6,") or line.startswith("samm,7,") for line in text.splitlines())
    fs = load_flowset(tmp_path)
    assert sorted(fs.samples["sample_id"]) == sorted(tiny_set.samples["sample_id"])
    assert set(fs.samples[fs.samples.database == "samm"]["subject"].str.len()) == {3}


def test_tree_layout_is_one_set(tmp_path, tiny_rows, tiny_flows, tiny_set):
    write_tree(tmp_path, tiny_rows, tiny_flows)
    n_subjects = len({r["subject"] for r in tiny_rows})
    assert len(list(tmp_path.rglob("*.png"))) == n_subjects * len(tiny_rows)  # copied per subject
    fs = load_flowset(tmp_path)
    assert fs.kind == "tree" and len(fs) == len(tiny_rows)  # unique samples, not copies
    a = fs.samples.set_index("sample_id")
    b = tiny_set.samples.set_index("sample_id")
    assert (a.loc[b.index, "label"] == b["label"]).all()
    order = [list(fs.samples["sample_id"]).index(s) for s in tiny_set.samples["sample_id"]]
    np.testing.assert_array_equal(fs.X[order], tiny_set.X)


def test_tree_label_conflict_is_reported(tmp_path, tiny_rows, tiny_flows):
    write_tree(tmp_path, tiny_rows, tiny_flows)
    r = tiny_rows[0]
    other = next(s for s in sorted({x["subject"] for x in tiny_rows}) if s != r["subject"])
    src = next((tmp_path / other / "u_train").rglob(f"{r['sample_id']} .png"))
    wrong = tmp_path / other / "u_train" / ("2" if src.parent.name != "2" else "1")
    wrong.mkdir(exist_ok=True)
    src.rename(wrong / src.name)
    with pytest.raises(DataError, match="disagree on the label"):
        load_flowset(tmp_path)


def test_channel_order_is_u_v_strain(tmp_path):
    """PIL reads RGB = (u, v, strain); OpenCV would give BGR = (strain, v, u)."""
    flow = np.zeros((3, 28, 28), np.float32)
    flow[0, :, 14:] = 1.0  # u: right half moves right
    flow[1, 14:, :] = 1.0  # v: bottom half moves down
    flow[2, :7, :7] = 1.0  # strain: top-left corner
    (tmp_path / "labels.csv").write_text("dataset,sub,filename_o,label\nsmic,s01,s01_po_01,1\n")
    Image.fromarray(encode_flow_image(flow), "RGB").save(tmp_path / "s01_s01_po_01 .png")
    fs = load_flowset(tmp_path)
    x = fs.X[0]
    assert x[0, :, 14:].min() == 1.0 and x[0, :, :14].max() == 0.0
    assert x[1, 14:, :].min() == 1.0 and x[1, :14, :].max() == 0.0
    assert x[2, :7, :7].min() == 1.0 and x[2].sum() == 49.0
    import cv2

    bgr = cv2.imread(str(tmp_path / "s01_s01_po_01 .png"))
    assert bgr[0, 27, 2] == 255 and bgr[0, 27, 0] == 0  # OpenCV's last channel is u


def _problem_kinds(err):
    return "\n".join(err.problems)


def test_unreadable_and_truncated_images(copy_flat):
    victim = sorted(copy_flat.glob("*.png"))[0]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated
    with pytest.raises(DataError) as e:
        load_flowset(copy_flat)
    assert victim.name in str(e.value) and "unreadable image" in str(e.value)
    fs = load_flowset(copy_flat, skip_bad=True)
    assert victim.name.replace(" .png", "") not in set(fs.samples["sample_id"])
    assert [p.kind for p in fs.problems] == ["unreadable_image"]


def test_label_outside_label_set(copy_flat):
    csv_path = copy_flat / "labels.csv"
    lines = csv_path.read_text().splitlines()
    parts = lines[3].split(",")
    parts[3] = "7"
    lines[3] = ",".join(parts)
    csv_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"labels.csv line 4: label '7'.*outside the label set"):
        load_flowset(copy_flat)


def test_duplicate_rows(copy_flat):
    csv_path = copy_flat / "labels.csv"
    lines = csv_path.read_text().splitlines()
    csv_path.write_text("\n".join(lines + [lines[1]]) + "\n")
    with pytest.raises(DataError, match=r"listed 2 times"):
        load_flowset(copy_flat)


def test_row_without_image_and_image_without_row(copy_flat):
    pngs = sorted(copy_flat.glob("*.png"))
    pngs[0].unlink()
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(copy_flat / "s99_s99_ne_01 .png")
    with pytest.raises(DataError) as e:
        load_flowset(copy_flat)
    msg = str(e.value)
    assert "no image for" in msg and pngs[0].name.replace(" .png", "") in msg
    assert "s99_s99_ne_01 .png" in msg and "no row in labels.csv" in msg
    fs = load_flowset(copy_flat, skip_bad=True)
    assert {p.kind for p in fs.problems} == {"row_without_image", "image_without_row"}


def test_mixed_sizes(copy_flat):
    victim = sorted(copy_flat.glob("*.png"))[2]
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(victim)
    with pytest.raises(DataError, match=r"32x32x3 but most are 28x28x3"):
        load_flowset(copy_flat)


def test_greyscale_image_is_a_problem(copy_flat):
    victim = sorted(copy_flat.glob("*.png"))[1]
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(victim)
    with pytest.raises(DataError, match="3-channel RGB"):
        load_flowset(copy_flat)


def test_empty_folder_and_missing_path(tmp_path):
    with pytest.raises(DataError, match="holds no flow images"):
        load_flowset(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_flowset(tmp_path / "nope")


def test_missing_labels_file(tmp_path, tiny_rows, tiny_flows):
    write_flat(tmp_path, tiny_rows[:3], tiny_flows)
    (tmp_path / "labels.csv").unlink()
    with pytest.raises(DataError, match="`labels`"):
        load_flowset(tmp_path)


def test_cache_is_read_raw(tmp_path, tiny_rows, tiny_flows, capsys):
    import pandas as pd

    rows = []
    for r in tiny_rows[:6]:
        rel = cache.save_flow(tmp_path, r["sample_id"], tiny_flows[r["sample_id"]])
        rows.append(
            {
                **dict.fromkeys(cache.MANIFEST_COLUMNS, ""),
                **{k: r[k] for k in ("sample_id", "database", "subject", "clip", "label")},
                "status": "ok",
                "file": rel,
            }
        )
    rows.append({**rows[0], "sample_id": "s99_s99_ne_01", "status": "failed", "anomalies": "no frames"})
    cache.write_manifest(tmp_path, pd.DataFrame(rows), {"classes": ["negative", "positive", "surprise"]})
    fs = load_flowset(tmp_path)
    assert fs.kind == "cache" and fs.encoding == "raw" and len(fs) == 6
    sid = fs.samples["sample_id"][0]
    np.testing.assert_array_equal(fs.X[0], tiny_flows[sid])
    # what the user is told on loading: the sample prepare left out, and why
    assert fs.warnings == ["s99_s99_ne_01: excluded by prepare (failed: no frames)"]
    assert fs.summary()["notes"] == fs.warnings and fs.subset([0]).warnings == fs.warnings
    from glfnet.cli.steps import load_data

    capsys.readouterr()
    load_data(tmp_path, None, skip_bad=False)  # the command line prints them
    assert "warning: s99_s99_ne_01: excluded by prepare (failed: no frames)" in capsys.readouterr().err
    # a damaged array is named
    (tmp_path / cache.flow_relpath(sid)).write_bytes(b"garbage")
    with pytest.raises(DataError, match=sid):
        load_flowset(tmp_path)


@pytest.mark.skipif(not SMIC_DEV.is_dir(), reason="SMIC development flow set not present")
def test_real_smic_release():
    fs = load_flowset(SMIC_DEV)
    info = fs.summary()
    assert info["n_samples"] == 164 and info["n_subjects"] == 16
    assert info["classes"] == {"negative": 70, "positive": 51, "surprise": 43}
    assert info["databases"] == {"smic": 164} and info["image_shape"] == [3, 28, 28]
    assert not fs.problems
    # each channel is min-max scaled per image to exactly 0..255
    assert np.allclose(fs.X.reshape(164, 3, -1).min(axis=2), 0)
    assert np.allclose(fs.X.reshape(164, 3, -1).max(axis=2), 1)
    # strain is a magnitude: near zero over most of the face, unlike u and v
    med = np.median(fs.X.reshape(164, 3, -1), axis=2).mean(axis=0)
    assert med[2] < 0.25 < med[0] and med[2] < 0.25 < med[1]
    json.dumps(info)
