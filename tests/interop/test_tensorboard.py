"""TensorBoard in and out through the real ``em`` command and TensorBoard's own reader and writer
(PyTorch's ``SummaryWriter``): scalars of every rank keep their type, name, step, time and value."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import em_dist as em
from tests.conftest import PYTHON, python_env

pytest.importorskip("tensorboard")


def _em(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([PYTHON, "-m", "em_dist.cli.main", *args], env=python_env(), capture_output=True, text=True,
                          timeout=90, cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _f32(x: float) -> float:
    return float(np.float32(x))


def test_tensorboard_logs_of_two_ranks_become_one_run(tmp_path: Path, run_parent) -> None:
    from torch.utils.tensorboard import SummaryWriter

    logdir = tmp_path / "tb"
    for rank in (0, 1):  # each rank of a DDP job with its own writer
        w = SummaryWriter(str(logdir / "exp1" / f"rank-{rank}"))
        for step in range(10):
            w.add_scalar("train/loss", 1.0 / (step + 1) + rank, step)
            w.add_scalar("Loss/val", 0.5 + rank, step)
            w.add_scalar("lr", 0.1, step)
        w.add_histogram("weights", np.arange(100.0), 0)
        w.close()
    w = SummaryWriter(str(logdir / "exp2"))  # a plain single-process run beside it
    w.add_scalar("accuracy", 0.9, 3)
    w.close()

    out = _em("import", "tensorboard", str(logdir), "--name", "old", cwd=tmp_path).stdout
    assert "not imported" not in out and "and 2 media" in out  # a histogram per rank
    runs = {r.name: r for r in em.list_runs()}
    assert sorted(runs) == ["old_exp1", "old_exp2"]
    rec = em.load_run(runs["old_exp1"].path)
    assert rec.status == "Succeeded" and rec.ranks() == [0, 1] and rec.world["size"] == 2
    for rank in (0, 1):
        loss = rec.metrics(type="train", name="loss", rank=rank)
        assert [p["step"] for p in loss] == list(range(10))
        assert [p["value"] for p in loss] == [_f32(1.0 / (s + 1) + rank) for s in range(10)]
        assert all(isinstance(p["time"], float) and p["time"] > 1e9 for p in loss)
        assert [p["value"] for p in rec.metrics(type="val", name="Loss", rank=rank)] == [_f32(0.5 + rank)] * 10
        assert len(rec.metrics(type="train", name="lr", rank=rank)) == 10
    assert [(p["type"], p["name"], p["step"]) for p in em.load_run(runs["old_exp2"].path).metrics()] == [("train", "accuracy", 3)]
    assert [(m.kind, m.name, m.rank, sum(m.counts)) for m in rec.media()] == [("histogram", "weights", r, 100) for r in (0, 1)]
    summary = json.loads((Path(rec.path) / "summary.json").read_text())  # what `em run list` reads: every rank
    assert summary["records"] == {"0": 30, "1": 30}


def test_histograms_images_and_text_come_in_as_media(tmp_path: Path, run_parent) -> None:
    from PIL import Image as PILImage
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    values = rng.normal(size=1000)
    pixels = (rng.random((3, 6, 5)) * 255).astype(np.uint8)  # CHW
    w = SummaryWriter(str(tmp_path / "tb"))
    for step in (0, 5):
        w.add_histogram("train/w", values + step, step, bins=16)
    w.add_image("val/sample", pixels, 5)
    w.add_text("notes", "hello **world**", 2)
    w.add_scalar("train/loss", 0.5, 5)
    w.add_audio("clip", np.zeros(100, dtype=np.float32), 1)
    w.close()

    out = _em("import", "tensorboard", str(tmp_path / "tb"), "--name", "media", cwd=tmp_path).stdout
    assert "1 points and 4 media" in out and "not imported: 1 audio" in out
    [run] = em.list_runs()
    rec = em.load_run(run.path)
    hists = rec.media(type="train", name="w")
    assert [(m.kind, m.step, m.rank) for m in hists] == [("histogram", 0, 0), ("histogram", 5, 0)]
    for m, step in zip(hists, (0, 5)):  # the event's own bucket edges and counts: NumPy's 16 bins
        counts, edges = np.histogram(values + step, bins=16)
        assert m.counts == counts.tolist() and m.nonfinite == 0
        assert m.bins == pytest.approx(edges.tolist())
        assert isinstance(m.time, float) and m.time > 1e9
    [img] = [m for m in rec.media() if m.kind == "image"]
    assert (img.type, img.name, img.step, img.width, img.height) == ("val", "sample", 5, 5, 6)
    assert np.array_equal(np.asarray(PILImage.open(img.path)), pixels.transpose(1, 2, 0))
    [text] = [m for m in rec.media() if m.kind == "text"]
    assert (text.type, text.name, text.step, text.text) == ("train", "notes", 2, "hello **world**")


def test_tensorflow_style_histogram_buckets() -> None:
    """TensorFlow's buckets end at DBL_MAX and start below the values' min: the edges are clamped to min..max."""
    from tensorboard.compat.proto.summary_pb2 import HistogramProto, Summary
    from tensorboard.util import tensor_util

    from em_dist.interop.tensorboard import _histo

    value = Summary.Value(tag="h", histo=HistogramProto(min=-1.0, max=2.0, num=6, bucket_limit=[0.0, 1.0, 1.7976931348623157e308],
                                                        bucket=[2.0, 1.0, 3.0]))
    assert _histo(value, tensor_util) == ("histogram", {"bins": [-1.0, 0.0, 1.0, 2.0], "counts": [2, 1, 3], "nonfinite": 0})


def test_a_run_goes_out_to_tensorboard_and_comes_back(tmp_path: Path, run_parent) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = em.create_run(name="roundtrip")
    for step in range(6):
        run.log(type="train", metrics={"loss": 2.0 / (step + 1), "acc": step / 10}, step=step, epoch=step // 3)
    run.log(type="val", metrics={"loss": 0.25}, step=5)
    run.finish()
    rank1 = Path(run.path) / "metrics" / "rank-1.jsonl"  # a second rank, in the run-folder format ranks write
    lines = (Path(run.path) / "metrics" / "rank-0.jsonl").read_text().splitlines()
    rank1.write_text("".join(json.dumps({**json.loads(x), "metrics": {k: v * 3 for k, v in json.loads(x)["metrics"].items()}}) + "\n"
                             for x in lines))
    rec = em.load_run(run.path)

    _em("export", "roundtrip", "--format", "tensorboard", "-o", str(tmp_path / "out"), cwd=tmp_path)
    for rank in (0, 1):  # TensorBoard's own reader sees every point at its step
        acc = EventAccumulator(str(tmp_path / "out" / f"rank-{rank}"))
        acc.Reload()
        assert sorted(acc.Tags()["scalars"]) == ["train/acc", "train/loss", "val/loss"]
        got = [(e.step, e.value) for e in acc.Scalars("train/loss")]
        assert got == [(p["step"], _f32(p["value"])) for p in rec.metrics(type="train", name="loss", rank=rank)]

    _em("import", "tensorboard", str(tmp_path / "out"), "--name", "back", cwd=tmp_path)
    [back] = [r for r in em.list_runs() if r.name == "back"]
    back = em.load_run(back.path)
    key = lambda p: (p["type"], p["name"], p["rank"], p["step"])  # noqa: E731
    assert sorted((key(p), p["value"]) for p in back.metrics()) == sorted((key(p), _f32(p["value"])) for p in rec.metrics())


def test_media_go_out_to_tensorboard_and_come_back(tmp_path: Path, run_parent) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = em.create_run(name="media_out")
    pixels = (np.random.default_rng(1).random((6, 5, 3)) * 255).astype(np.uint8)
    run.log(type="train", metrics={"loss": 1.0, "h": em.Histogram(np.arange(10.0), bins=4)}, step=3)
    run.log(type="val", metrics={"img": em.Image(pixels), "note": em.Text("hi"), "t": em.Table(["a"], [[1]])}, step=4)
    run.finish()
    rec = em.load_run(run.path)

    out = _em("export", "media_out", "--format", "tensorboard", "-o", str(tmp_path / "out"), cwd=tmp_path).stdout
    assert "1 points, 3 media" in out
    acc = EventAccumulator(str(tmp_path / "out"), size_guidance={"tensors": 0})
    acc.Reload()
    [h] = acc.Histograms("train/h")
    assert h.step == 3 and list(h.histogram_value.bucket) == [0, 3, 2, 2, 3]
    [img] = acc.Images("val/img")
    assert (img.step, img.width, img.height) == (4, 5, 6)
    [text] = acc.Tensors("val/note/text_summary")
    assert text.step == 4 and text.tensor_proto.string_val == [b"hi"]

    _em("import", "tensorboard", str(tmp_path / "out"), "--name", "media_back", cwd=tmp_path)
    [back] = [r for r in em.list_runs() if r.name == "media_back"]
    fields = lambda m: (m.kind, m.type, m.name, m.step, m.bins, m.counts, m.width, m.height, m.text)  # noqa: E731
    assert [fields(m) for m in em.load_run(back.path).media()] == [fields(m) for m in rec.media() if m.kind != "table"]
    [img_back] = [m for m in em.load_run(back.path).media() if m.kind == "image"]
    assert Path(img_back.path).read_bytes() == Path(rec.media(name="img")[0].path).read_bytes()


def test_an_imported_run_uploads_with_every_rank(tmp_path: Path, run_parent, server) -> None:
    from torch.utils.tensorboard import SummaryWriter

    for rank in (0, 1):
        w = SummaryWriter(str(tmp_path / "tb" / f"rank-{rank}"))
        for step in range(3):
            w.add_scalar("val/acc", 0.5 + step / 10 + rank, step)
        w.close()
    _em("import", "tensorboard", str(tmp_path / "tb"), "--name", "up", cwd=tmp_path)
    [imported] = em.list_runs()
    _, key = server.add_user()
    em.upload(imported.path, host=server.url, api_key=key)
    remote = em.Client(host=server.url, api_key=key).run(imported.id)
    assert remote.name == "up" and remote.status == "Succeeded" and "imported" in remote.labels
    for rank in (0, 1):
        assert [p["value"] for p in remote.metrics(name="acc", rank=rank)] == [_f32(0.5 + s / 10 + rank) for s in range(3)]
