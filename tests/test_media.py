"""em.Histogram / em.Image / em.Table / em.Text: checks at the call, encoding on the writer thread,
storage in the run folder, reading back with RunRecord.media (issue 25)."""

from __future__ import annotations

import base64
import io
import json
import threading
from pathlib import Path

import numpy as np
import pytest

import em_dist as em
from em_dist.limits import MAX_HISTOGRAM_BINS, MAX_IMAGE_PIXELS, MAX_TABLE_CELLS
from em_dist.media.encode import histogram_payload, image_payload, media_record, split_media
from em_dist.store.journal import merge, numbered, watermark
from em_dist.store.lines import MEDIA_MARK
from em_dist.store.media import media_file, read_media, stored_line
from em_dist.values import convert_value, has_device_values, materialize

PIL = pytest.importorskip("PIL.Image")


# -- checks at the call -------------------------------------------------------------
@pytest.mark.parametrize("bins", [0, MAX_HISTOGRAM_BINS + 1, -3])
def test_histogram_bins_out_of_range(bins):
    with pytest.raises(ValueError, match="bins"):
        em.Histogram([1.0, 2.0], bins=bins)


@pytest.mark.parametrize("values,error", [("abc", TypeError), ([1, "x"], TypeError), ([], ValueError),
                                          (np.array(["a"]), TypeError), ({1, 2}, TypeError),
                                          (np.array([1 + 2j]), TypeError)])
def test_histogram_bad_values(values, error):
    with pytest.raises(error):
        em.Histogram(values)


def test_histogram_bad_bins_and_range_types():
    with pytest.raises(TypeError):
        em.Histogram([1.0], bins=2.5)
    with pytest.raises(TypeError):
        em.Histogram([1.0], bins=True)
    with pytest.raises(ValueError):
        em.Histogram([1.0], range=(2.0, 1.0))


def test_histogram_copies_its_values():
    a = np.arange(10.0)
    h = em.Histogram(a, bins=2)
    a[:] = 100.0
    assert histogram_payload(h)["counts"] == [5, 5]


def test_table_checks():
    with pytest.raises(ValueError, match="row 1 has 1 cells"):
        em.Table(["a", "b"], [[1, 2], [3]])
    with pytest.raises(TypeError):
        em.Table("ab", [])
    with pytest.raises(ValueError, match="twice"):
        em.Table(["a", "a"], [])
    with pytest.raises(TypeError, match=r"cell \(0, 1\)"):
        em.Table(["a", "b"], [[1, object()]])
    with pytest.raises(ValueError, match="cells"):
        em.Table(["a"], [[1]] * (MAX_TABLE_CELLS + 1))
    t = em.Table(["a", "b"], [[np.int64(3), np.float32(0.5)], [True, None]])
    assert t.rows == ((3, 0.5), (True, None))


def test_text_checks():
    with pytest.raises(TypeError):
        em.Text(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NUL"):
        em.Text("a\x00b")


def test_image_checks(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        em.Image(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(TypeError, match="dtype"):
        em.Image(np.zeros((4, 4), dtype=np.int32))
    with pytest.raises(ValueError, match="pixels"):
        em.Image(np.zeros((MAX_IMAGE_PIXELS + 1, 1), dtype=np.uint8))
    with pytest.raises(FileNotFoundError):
        em.Image(tmp_path / "nope.png")
    with pytest.raises(TypeError):
        em.Image(3)
    with pytest.raises(TypeError, match="caption"):
        em.Image(np.zeros((2, 2)), caption=3)  # type: ignore[arg-type]


def test_log_still_refuses_strings_and_names_the_media_types():
    with pytest.raises(TypeError, match="em.Text"):
        convert_value("x", "text")
    with pytest.raises(TypeError, match="em.Histogram"):
        convert_value("x", object())


# -- encoding (the writer thread's half) ------------------------------------------------
def test_histogram_encoding_numpy_torch_and_nonfinite():
    torch = pytest.importorskip("torch")
    values = [0.0, 1.0, 2.0, 3.0, float("nan"), float("inf")]
    for v in (values, np.array(values), torch.tensor(values)):
        doc = histogram_payload(em.Histogram(v, bins=3))
        assert doc["counts"] == [1, 1, 2] and doc["nonfinite"] == 2
        assert doc["bins"] == [0.0, 1.0, 2.0, 3.0]
    one = histogram_payload(em.Histogram([5.0, 5.0], bins=1))
    assert one["bins"] == [4.5, 5.5] and one["counts"] == [2]
    ranged = histogram_payload(em.Histogram(np.arange(10.0), bins=2, range=(0, 4)))
    assert ranged["counts"] == [2, 3]


def test_histogram_of_int_and_half_tensors():
    torch = pytest.importorskip("torch")
    for t in (torch.arange(4), torch.arange(4, dtype=torch.float16), torch.arange(4, dtype=torch.bfloat16)):
        assert histogram_payload(em.Histogram(t, bins=2))["counts"] == [2, 2]


def test_cuda_tensors_are_kept_on_the_device_and_binned_there():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    values = torch.arange(8.0, device="cuda")
    h = em.Histogram(values, bins=2)
    img = em.Image(torch.zeros(3, 4, 5, device="cuda"))
    assert h.values.is_cuda and img.data.is_cuda  # no copy to the host in the call
    assert histogram_payload(h)["counts"] == [4, 4]
    assert (image_payload(img)["width"], image_payload(img)["height"]) == (5, 4)


@pytest.mark.parametrize("make", ["hw", "hwc", "float", "torch_chw", "pil", "file_jpeg"])
def test_image_encodes_to_png(make, tmp_path):
    arr = (np.arange(4 * 6 * 3) % 256).astype(np.uint8).reshape(4, 6, 3)
    if make == "hw":
        data = arr[:, :, 0]
    elif make == "hwc":
        data = arr
    elif make == "float":
        data = arr / 255.0
    elif make == "torch_chw":
        torch = pytest.importorskip("torch")
        data = torch.from_numpy(arr).permute(2, 0, 1)
    elif make == "pil":
        data = PIL.fromarray(arr)
    else:
        path = tmp_path / "a.jpg"
        PIL.fromarray(arr).save(path)
        data = path
    doc = image_payload(em.Image(data, caption="c"))
    png = base64.b64decode(doc["png"])
    assert png.startswith(b"\x89PNG") and (doc["width"], doc["height"]) == (6, 4) and doc["caption"] == "c"
    back = np.asarray(PIL.open(io.BytesIO(png)))
    if make in ("hwc", "float", "torch_chw", "pil"):
        assert np.array_equal(back, arr)


def test_a_file_that_is_no_image_is_left_out_with_a_warning(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"not an image")
    rec = ("val", 1, None, 0.0, {"loss": 1.0, "img": em.Image(path)})
    with pytest.warns(Warning, match="left out"):
        out = split_media([rec], [0])
    assert out == [("val", 1, None, 0.0, {"loss": 1.0})]


def test_materialize_finds_media_records_and_split_keeps_order():
    h = em.Histogram([1.0, 2.0], bins=2)
    batch = [("train", 0, None, 0.0, {"a": 1.0}), ("val", 1, 2, 1.5, {"h": h, "b": 2}), "line\n"]
    assert has_device_values(batch[1]) and not has_device_values(batch[0])
    at = materialize(batch)
    assert at == [1]
    out = split_media(batch, at)
    assert out[0] == batch[0] and out[1] == ("val", 1, 2, 1.5, {"b": 2}) and out[3] == "line\n"
    assert out[2].startswith(MEDIA_MARK)
    doc = json.loads(out[2][1:])
    assert doc["kind"] == "histogram" and doc["name"] == "h" and doc["step"] == 1 and doc["epoch"] == 2


# -- storage and reading back ---------------------------------------------------------
def test_plain_run_stores_media_and_reads_it_back(tmp_path, monkeypatch):
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path / "runs"))
    run = em.create_run(name="media")
    img = np.full((3, 3, 3), 7, dtype=np.uint8)
    for step in range(2):
        run.log("val", {"loss": 1.0, "img": em.Image(img), "h": em.Histogram(np.arange(4.0), bins=2),
                        "t": em.Table(["a", "b"], [["x", float("nan")]]), "s": em.Text("hello")}, step=step)
    run.log("train", {"only": em.Text("no numbers")}, step=5)
    run.finish()
    rec = em.load_run(run.path)
    assert [p["step"] for p in rec.metrics(name="loss")] == [0, 1]
    assert rec.metrics(name="only") == [] and rec.metrics(name="img") == []
    images = rec.media(name="img")
    assert [m.step for m in images] == [0, 1] and images[0].path == images[1].path  # stored once
    assert len(list((Path(run.path) / "media").glob("*.png"))) == 1
    assert np.array_equal(np.asarray(PIL.open(images[0].path)), img)
    h = rec.media(name="h")[0]
    assert (h.kind, h.type, h.rank, h.bins, h.counts) == ("histogram", "val", 0, [0.0, 1.5, 3.0], [2, 2])
    t = rec.media(name="t")[0]
    assert t.columns == ["a", "b"] and t.rows == [["x", "NaN"]]
    assert rec.media(type="train")[0].text == "no numbers"
    assert rec.media(rank=1) == []
    for line in (Path(run.path) / "metrics" / "rank-0.jsonl").read_text().splitlines():
        assert set(json.loads(line)) == {"type", "step", "epoch", "time", "metrics"}  # scalars as before


def test_log_of_floats_never_touches_the_media_path(tmp_path, monkeypatch):
    """Media values wait in the record for the writer thread: log() returns before any encoding."""
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path / "runs"))
    import em_dist.media.encode as encode

    calls: list[str] = []
    real = encode.PAYLOADS[em.Histogram]
    monkeypatch.setitem(encode.PAYLOADS, em.Histogram, lambda h: calls.append(threading.current_thread().name) or real(h))
    run = em.create_run(name="thread")
    run.log("val", {"h": em.Histogram([1.0, 2.0])}, step=0)
    assert calls == []
    run.finish()
    assert calls and all(name != threading.main_thread().name for name in calls)


def test_peer_media_records_are_numbered_and_merged_exactly_once(tmp_path):
    """A peer's media record in rank 0's writer and in a journal merge: one line with its number,
    whichever way it came, and the watermark counts it."""
    run_dir = tmp_path / "run"
    (run_dir / "metrics").mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({"id": "x", "name": "x"}))
    img = media_record("val", 3, None, 1.0, "img", em.Image(np.zeros((2, 2), dtype=np.uint8)))
    text = media_record("val", 3, None, 1.0, "t", em.Text("a"))
    first = stored_line(run_dir, numbered(img[1:], 1, 0))
    media_file(run_dir, 1).parent.mkdir(parents=True, exist_ok=True)
    media_file(run_dir, 1).write_text(first)
    assert watermark(run_dir, 1, 0) == 1
    journal = tmp_path / "rank-1.7.journal"
    journal.write_text(f"1\t{img}2\t{text}")
    (tmp_path / "rank-1.7.json").write_text(json.dumps({"rank": 1, "closed": True}))
    merged = merge(run_dir, journal)
    assert (merged.added, merged.last) == (1, 2)
    entries = read_media(run_dir)
    assert [(m.kind, m.rank) for m in entries] == [("image", 1), ("text", 1)]
    assert Path(entries[0].path).is_file()


# -- a real job: two ranks under torchrun ------------------------------------------------
def test_two_ranks_under_torchrun_each_land_in_the_run_once(tmp_path):
    pytest.importorskip("torch")
    from tests.ranks._launch import job_env, run_job, torchrun_cmd

    worker = Path(__file__).parent / "ranks" / "workers" / "media.py"
    proc = run_job(torchrun_cmd(2, script=worker), job_env(tmp_path), timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rec = em.load_run((tmp_path / "out" / "rank-0.path").read_text())
    assert rec.status == "Succeeded"
    for r in (0, 1):
        images = rec.media(name="sample", rank=r)
        assert [m.step for m in images] == [0, 1, 2]
        for m in images:
            assert m.rank == r and m.caption == f"r{r}s{m.step}"
            assert np.asarray(PIL.open(m.path)).max() == 10 * r + m.step
        hists = rec.media(name="dist", rank=r)
        assert [m.step for m in hists] == [0, 1, 2]
        for m in hists:
            assert sum(m.counts) == 100 and m.bins[0] == r * 1000 + m.step - 0.5
        assert [m.text for m in rec.media(name="note", rank=r)] == [f"rank {r} step {s}" for s in range(3)]
        assert [p["step"] for p in rec.metrics(name="loss", rank=r)] == [0, 1, 2]


def test_counts_payload_checks_a_histogram_binned_elsewhere():
    from em_dist.media.encode import counts_payload

    assert counts_payload([0, 1, 3], [2, 5]) == {"bins": [0.0, 1.0, 3.0], "counts": [2, 5], "nonfinite": 0}
    for edges, counts in (([0, 1], [1, 2]), ([1, 0], [1]), ([0, float("inf")], [1]), ([0, 1], [-1]), ([0], [])):
        with pytest.raises(ValueError):
            counts_payload(edges, counts)
