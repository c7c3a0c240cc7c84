"""``em.Client`` reads: downsampled metrics keep extremes, cross-rank aggregates, multi-rank runs."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import em_dist as em
from tests.server.runs import assert_same_run


def _multi_rank_run() -> Path:
    """A real run, then ranks 1-3 added in the run-folder format as a distributed run writes them."""
    run = em.create_run(name="ddp")
    run.hparams.update({"lr": 0.1})
    for step in range(1000):
        run.log(type="train", metrics={"loss": math.sin(step / 50.0) + (5.0 if step == 777 else 0.0)}, step=step)
    run.finish()
    path = Path(run.path)
    lines = (path / "metrics" / "rank-0.jsonl").read_text().splitlines()
    for rank in (1, 2, 3):
        with open(path / "metrics" / f"rank-{rank}.jsonl", "w") as fh:
            for line in lines:
                rec = json.loads(line)
                rec["metrics"] = {k: v + rank for k, v in rec["metrics"].items()}
                fh.write(json.dumps(rec) + "\n")
    (path / "hparams-rank-2.json").write_text(json.dumps({"lr": 0.2}))
    # an artifact rank 1 created, shipped into the run folder's files/ as a distributed run does
    made = em.create_artifact(name="rank1-checkpoint")
    src = path.parent / "r1.bin"
    src.write_bytes(b"rank one bytes")
    made.add_file(str(src))
    shipped = path / "files" / Path(made.path).name
    shutil.copytree(made.path, shipped)
    shutil.rmtree(made.path)
    entries = json.loads((path / "artifacts.json").read_text()) if (path / "artifacts.json").exists() else []
    entries.append({"id": made.id, "name": made.name, "path": str(shipped.relative_to(path)), "role": "output"})
    (path / "artifacts.json").write_text(json.dumps(entries))
    return path


def test_downsampled_series_keeps_min_and_max(server) -> None:
    _, key = server.add_user()
    path = _multi_rank_run()
    em.upload(path, host=server.url, api_key=key)
    client = em.Client(host=server.url, api_key=key)
    run_id = em.load_run(path).id
    assert_same_run(client, path)
    assert client.run(run_id).rank_hparams == {2: {"lr": 0.2}}
    (shipped,) = client.run(run_id).artifacts
    assert client.artifact(shipped.id).read("r1.bin") == b"rank one bytes"
    full = client.metrics(run_id, type="train", name="loss", rank=0)["series"][0]
    small = client.metrics(run_id, type="train", name="loss", rank=0, points=100)["series"][0]
    assert full["count"] == small["count"] == 1000
    assert len(small["steps"]) <= 100
    assert max(small["values"]) == max(full["values"]) and 777 in small["steps"]
    assert min(small["values"]) == min(full["values"])
    assert small["steps"] == sorted(small["steps"])
    by_time = client.metrics(run_id, type="train", name="loss", rank=0, points=100, x="time")["series"][0]
    assert by_time["steps"] == small["steps"] and len(by_time["times"]) == len(small["steps"])
    assert by_time["times"] == [full["times"][full["steps"].index(s)] for s in small["steps"]]
    by_epoch = client.metrics(run_id, type="train", name="loss", rank=0, points=100, x="epoch")["series"][0]
    assert by_epoch["epochs"] == [full["epochs"][full["steps"].index(s)] for s in small["steps"]]
    agg = client.aggregate(run_id, "train", "loss")
    assert agg["ranks"] == [0, 1, 2, 3] and len(agg["steps"]) == 1000
    i = agg["steps"].index(10)
    v0 = full["values"][10]
    assert math.isclose(agg["mean"][i], v0 + 1.5) and agg["min"][i] == v0 and agg["max"][i] == v0 + 3
    runs = client.runs()
    assert runs[0]["latest"] == {"train/loss": full["values"][-1]}
    # the same as pandas frames: a row per run with the filter language's column names, a row per point
    frame = runs.dataframe()
    assert frame["id"].tolist() == [run_id] and frame["hparams.lr"].tolist() == [0.1]
    assert frame["metrics.train/loss"].tolist() == [full["values"][-1]] and frame["status"].tolist() == ["Succeeded"]
    points = client.run(run_id).dataframe(type="train", name="loss", rank=0)
    assert points["step"].tolist() == full["steps"] and points["value"].tolist() == full["values"]


def test_artifact_download_and_nonfinite_values(server, tmp_path: Path) -> None:
    _, key = server.add_user()
    run = em.create_run(name="odd")
    run.log(type="train", metrics={"loss": float("nan"), "gain": float("inf")}, step=0)
    run.log(type="train", metrics={"loss": 1.0, "gain": 2.0}, step=1)
    nested = tmp_path / "ckpt"
    (nested / "sub").mkdir(parents=True)
    (nested / "sub" / "a.txt").write_text("alpha")
    (nested / "b.txt").write_text("beta")
    artifact = em.create_artifact(name="ckpt")
    artifact.add_dir(str(nested))
    run.mark_output(artifact)
    run.finish()
    em.upload(run.path, host=server.url, api_key=key)
    client = em.Client(host=server.url, api_key=key)
    assert_same_run(client, run.path)
    values = [p["value"] for p in client.run(run.id).metrics(name="gain")]
    assert values == [float("inf"), 2.0]
    dest = client.artifact(artifact.id).download(tmp_path / "down")
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.txt")) == sorted(f["path"] for f in artifact.files)
    shutil.rmtree(dest)
