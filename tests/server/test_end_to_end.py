"""The seed's single-device script against a real server, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import subprocess
import textwrap
from pathlib import Path

import pytest

import em_dist as em
from tests.conftest import PYTHON, python_env
from tests.server.runs import assert_same_run, make_run, series

SEED_SCRIPT = textwrap.dedent(
    """
    import sys
    import torch
    import em_dist as em

    host, key = sys.argv[1], sys.argv[2]
    run = em.create_run(name="mnist_torch")
    run.hparams.update({"batch_size": 32, "epochs": 2, "learning_rate": 0.01, "optimizer": "Adam"})
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 2)
    opt = torch.optim.Adam(model.parameters(), lr=run.hparams["learning_rate"])
    x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
    step = 0
    for epoch in range(2):
        for i in range(0, 64, 32):
            loss = torch.nn.functional.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad(); loss.backward(); opt.step()
            step += 1
            run.log(type="train", metrics={"loss": loss.detach()}, step=step, epoch=epoch)
        run.log(type="val", metrics={"loss": float(loss), "accuracy": 0.5 + epoch / 10}, step=step, epoch=epoch)
    torch.save(model.state_dict(), "model_state_dict.pt")
    artifact = em.create_artifact(name="mnist_torch_saved_model")
    artifact.add_file("model_state_dict.pt")
    run.mark_output(artifact)
    run.finish()
    em.login(host=host, api_key=key)
    result = run.upload(folder="em-examples", make_folder=True)
    print("RUN", run.id, run.path, result.server_run_id, flush=True)
    """
)


def test_seed_script_end_to_end(server, tmp_path: Path) -> None:
    _, key = server.add_user(via_cli=True)
    script = tmp_path / "mnist_torch.py"
    script.write_text(SEED_SCRIPT)
    proc = subprocess.run([PYTHON, str(script), server.url, key], cwd=tmp_path, env=python_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    run_id, run_path, server_id = proc.stdout.split("RUN ", 1)[1].split()
    assert server_id == run_id
    client = em.Client(host=server.url, api_key=key)
    assert [f["path"] for f in client.folders()] == ["em-examples"]
    assert [r["id"] for r in client.runs("em-examples")] == [run_id]
    assert_same_run(client, run_path)
    remote = client.run(run_id)
    assert remote.hparams == {"batch_size": 32, "epochs": 2, "learning_rate": 0.01, "optimizer": "Adam"}
    assert len(remote.metrics(type="train", name="loss")) == 4
    (artifact,) = remote.artifacts
    assert artifact.role == "output" and artifact.name == "mnist_torch_saved_model"
    saved = (tmp_path / "model_state_dict.pt").read_bytes()
    assert client.artifact(artifact.id).read("model_state_dict.pt") == saved
    graph = client.lineage(run_id)
    assert {(n["id"], n["kind"]) for n in graph["nodes"]} == {(run_id, "run"), (artifact.id, "artifact")}
    assert graph["edges"] == [{"source": run_id, "target": artifact.id, "role": "output"}]
    assert hashlib.sha256(saved).hexdigest() == artifact.files[0]["sha256"]


def test_reupload_stores_nothing_twice(server) -> None:
    _, key = server.add_user()
    run = make_run("twice", steps=30)
    first = em.upload(run.path, host=server.url, api_key=key)
    second = em.upload(run.path, host=server.url, api_key=key)
    assert first.metrics_sent > 0 and first.bytes_sent > first.metrics_sent  # metrics and the artifact blob
    assert (second.metrics_sent, second.bytes_sent, second.skipped) == (0, 0, False)
    client = em.Client(host=server.url, api_key=key)
    assert len(client.runs()) == 1
    names = {(s["type"], s["name"]): s["count"] for s in client.metric_names(run.id)}
    assert names == {("train", "loss"): 30, ("train", "acc"): 30, ("val", "loss"): 3}
    assert_same_run(client, run.path)
    history = em_dist_uploads(run.path)
    assert len(history) == 1 and history[0]["offsets"] == {"0": Path(run.path, "metrics", "rank-0.jsonl").stat().st_size}


def em_dist_uploads(path: str) -> list[dict]:
    from em_dist.client.snapshot import read_uploads

    return read_uploads(path)


def test_growing_run_sends_only_what_is_new(server) -> None:
    _, key = server.add_user()
    run = em.create_run(name="growing")
    for step in range(20):
        run.log(type="train", metrics={"loss": float(step)}, step=step)
    run.flush()
    first = em.upload(run.path, host=server.url, api_key=key)
    client = em.Client(host=server.url, api_key=key)
    assert client.run(run.id).status == "Running"
    assert len(client.run(run.id).metrics()) == 20
    for step in range(20, 50):
        run.log(type="train", metrics={"loss": float(step)}, step=step)
    run.finish()
    second = em.upload(run.path, host=server.url, api_key=key)
    assert 0 < second.metrics_sent < first.metrics_sent * 2
    assert client.run(run.id).status == "Succeeded"
    assert_same_run(client, run.path)


@pytest.mark.parametrize("strategy", ["skip", "error", "new", "replace"])
def test_conflict_strategies(server, strategy: str) -> None:
    _, key = server.add_user()
    client = em.Client(host=server.url, api_key=key)
    old = make_run("same", steps=5, artifact_bytes=None)
    em.upload(old.path, host=server.url, api_key=key)
    new = make_run("same", steps=7, artifact_bytes=None)
    if strategy == "error":
        with pytest.raises(em.ConflictError, match="already holds a run named 'same'"):
            em.upload(new.path, conflict_strategy="error", host=server.url, api_key=key)
        assert [r["id"] for r in client.runs()] == [old.id]
        return
    result = em.upload(new.path, conflict_strategy=strategy, host=server.url, api_key=key)
    runs = {r["id"]: r["name"] for r in client.runs()}
    if strategy == "skip":
        assert result.skipped and runs == {old.id: "same"}
    elif strategy == "new":
        assert runs == {old.id: "same", new.id: new.alternative_name}
    else:
        assert runs == {new.id: "same"}
        with pytest.raises(em.NotFoundError):
            client.run(old.id)
    if strategy != "skip":
        assert len(client.run(new.id).metrics()) == 7 * 2 + 0


def test_crashed_run_uploads_as_failed(server, tmp_path: Path) -> None:
    _, key = server.add_user()
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent("""
        import os, signal
        import em_dist as em
        run = em.create_run(name="doomed")
        for step in range(10):
            run.log(type="train", metrics={"loss": 1.0 / (step + 1)}, step=step)
        run.flush()
        print(run.path, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """))
    proc = subprocess.run([PYTHON, str(script)], cwd=tmp_path, env=python_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9
    path = proc.stdout.strip()
    em.upload(path, host=server.url, api_key=key)
    client = em.Client(host=server.url, api_key=key)
    remote = client.run(em.load_run(path).id)
    assert (remote.status, remote.status_reason) == ("Failed", "crashed")
    assert_same_run(client, path)


def test_parent_folder_uploads_every_run(server, run_parent: Path) -> None:
    _, key = server.add_user()
    runs = [make_run(f"many{i}", steps=3, artifact_bytes=None) for i in range(3)]
    results = em.upload(run_parent, folder="a/b", make_folder=True, host=server.url, api_key=key)
    assert sorted(r.run_id for r in results) == sorted(r.id for r in runs)
    client = em.Client(host=server.url, api_key=key)
    assert {f["path"] for f in client.folders()} == {"a", "a/b"}
    assert len(client.runs("a/b")) == 3
    assert series(client.run(runs[0].id).metrics()) == series(em.load_run(runs[0].path).metrics())


def test_lineage_links_producer_and_consumer(server) -> None:
    _, key = server.add_user()
    producer = make_run("producer", steps=2)
    (made,) = em.load_run(producer.path).artifacts
    consumer = em.create_run(name="consumer")
    consumer.mark_input(em.load_artifact(made.path))
    consumer.log(type="train", metrics={"loss": 0.5}, step=0)
    consumer.finish()
    em.upload(producer.path, host=server.url, api_key=key)
    em.upload(consumer.path, host=server.url, api_key=key)
    graph = em.Client(host=server.url, api_key=key).lineage(consumer.id)
    assert {n["id"] for n in graph["nodes"]} == {producer.id, made.id, consumer.id}
    assert {(e["source"], e["target"], e["role"]) for e in graph["edges"]} == {
        (producer.id, made.id, "output"), (made.id, consumer.id, "input")}
