"""The Horovod engine under the real launcher: ``horovodrun -np 2 --gloo`` and ``--mpi``.

The shared channel contract worker (``workers/contract.py``, as under torchrun and
mpirun) runs under horovodrun: exactly once and in order; a bounded close when a peer
says goodbye too late; rank-0-only use. A training-style script on
``em_dist.create_run`` has its gathered points read back with ``em_dist.load_run``.

Horovod is built by ``.ci/horovod.sh``; without it these tests skip locally and fail
in CI (``CI`` set).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PYTHON, REPO, python_env
from tests.ranks._launch import HOROVODRUN

pytestmark = pytest.mark.timeout(180)

_HAVE_HOROVOD = importlib.util.find_spec("horovod") is not None
if not _HAVE_HOROVOD:
    if os.environ.get("CI"):
        pytest.fail("horovod is not installed (CI runs .ci/horovod.sh first)", pytrace=False)
    pytest.skip("horovod is not installed (run .ci/horovod.sh)", allow_module_level=True)

CONTRACT = Path(__file__).parent / "workers" / "contract.py"
CONTROLLERS = ["gloo", "mpi"]
TRANSPORT = {"gloo": "gloo", "mpi": "mpi"}
"""What carries the records beside Horovod's cycle (issue 8, item 9): gloo pairs on a store found
through Horovod's rendezvous under --gloo; COMM_WORLD point-to-point under --mpi (hvd.init() first)."""

# Rank r posts/logs this many items; ranks differ on purpose.
COUNTS = {0: 40, 1: 95}

RUN_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import horovod.torch as hvd
    import torch
    hvd.init()
    import em_dist as em

    rank = hvd.rank()
    run = em.create_run(name="hvd_gather", dist_timeout=30)
    run.hparams.update({"lr": 0.01, "batch_size": 32})
    count = COUNTS[str(rank)]
    for step in range(120):
        if step < count:
            run.log(type="train", metrics={"loss": 1.0 / (step + 1), "rank": rank}, step=step, epoch=step // 50)
        hvd.allreduce(torch.ones(4), name=f"grad.{step}")
    run.finish()

    # Rank-0-only style afterwards: must neither hang nor error.
    if rank == 0:
        solo = em.create_run(name="hvd_rank0_only", dist_timeout=30)
        solo.log(type="val", metrics={"acc": 0.5}, step=1)
        started = time.monotonic()
        solo.finish()
        with open("solo_finish_s.txt", "w") as f:  # a file: horovodrun interleaves the ranks' stdout
            f.write(str(time.monotonic() - started))
    hvd.allreduce(torch.ones(1), name="last")
    """
)


def _horovodrun(controller: str, script: str, tmp_path: Path, *args: str, counts: dict[int, int] = COUNTS,
                **env_extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(f"COUNTS = {json.dumps({str(k): v for k, v in counts.items()})}\n" + script)
    env = python_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", **env_extra)
    env["PATH"] = str(Path(PYTHON).parent) + os.pathsep + env.get("PATH", "")
    n = len(counts)
    cmd = [HOROVODRUN, "-np", str(n), "-H", f"localhost:{n}", f"--{controller}", PYTHON, str(path), *args]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, f"horovodrun failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def _contract(controller: str, tmp_path: Path, *args: str) -> tuple[dict, dict]:
    out = tmp_path / "out"
    out.mkdir()
    env = python_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", EM_TEST_OUT=str(out))
    env["PATH"] = str(Path(PYTHON).parent) + os.pathsep + env.get("PATH", "")
    cmd = [HOROVODRUN, "-np", "2", "-H", "localhost:2", f"--{controller}", PYTHON, str(CONTRACT), "--horovod", *args]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, f"horovodrun failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    root, peer = (json.loads((out / f"rank-{r}.json").read_text()) for r in (0, 1))
    assert root["after_allreduce"] == peer["after_allreduce"] == 2 * sum(range(1, 21)), "training unaffected"
    return root, peer


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_channel_contract(controller: str, tmp_path: Path) -> None:
    root, peer = _contract(controller, tmp_path, "--count", "95")
    assert root["engine"] == "horovod" and root["transport"] == TRANSPORT[controller] and peer["connected"]
    assert root["got"] == {"1": list(range(96))}  # exactly once, in order
    assert root["bytes"] == {"1": 5_000_000 + 10 * 95}
    assert root["lost"] == [] and root["absent"] == []
    assert peer["goodbye"] and peer["goodbye_s"] < 5.0
    assert peer["rank0_run"]["id"] == "contract"


def test_late_goodbye_is_late_within_the_timeout(tmp_path: Path) -> None:
    root, peer = _contract("gloo", tmp_path, "--mode", "silent", "--timeout", "1")
    assert root["got"] == {"1": list(range(30))} and root["late"] == [1] and root["lost"] == []
    assert root["close_s"] < 2.5
    assert peer["goodbye_s"] < 2.0  # rank 0 already said stop


def test_rank0_only_closes_quickly_with_peers_absent(tmp_path: Path) -> None:
    root, _ = _contract("gloo", tmp_path, "--mode", "alone")
    assert root["lost"] == [] and root["absent"] == [1] and not root["connected"]
    assert root["close_s"] < 2.5


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_run_gathers_every_rank(controller: str, tmp_path: Path, run_parent: Path) -> None:
    import em_dist

    proc = _horovodrun(controller, RUN_SCRIPT, tmp_path)
    # em_dist submits nothing to Horovod now: no misleading error at hvd.shutdown() after the
    # rank-0-only run (issue 8, item 9)
    assert "HorovodInternalError" not in proc.stdout + proc.stderr
    runs = {p.name.rsplit("_", 3)[0]: p for p in run_parent.iterdir()}
    assert sorted(runs) == ["hvd_gather", "hvd_rank0_only"], proc.stdout

    record = em_dist.load_run(runs["hvd_gather"])
    assert record.status == "Succeeded" and record.lost_ranks == []
    assert record.world["size"] == 2 and record.world["transport"] == TRANSPORT[controller]
    for rank, count in COUNTS.items():
        steps = [p["step"] for p in record.metrics(type="train", name="loss", rank=rank)]
        assert steps == list(range(count))  # each point exactly once
        values = {p["value"] for p in record.metrics(type="train", name="rank", rank=rank)}
        assert values == {rank}

    solo = em_dist.load_run(runs["hvd_rank0_only"])
    assert solo.status == "Succeeded" and solo.ranks() == [0]
    finish_s = float((tmp_path / "solo_finish_s.txt").read_text())
    assert finish_s < 5.0


def test_node_leaders_relay_beside_horovod(tmp_path: Path, run_parent: Path) -> None:
    """Four ranks in blocks of two under ``--gloo``: rank 3 reaches rank 0 through rank 2."""
    import em_dist

    counts = {0: 40, 1: 95, 2: 60, 3: 80}
    proc = _horovodrun("gloo", RUN_SCRIPT, tmp_path, counts=counts, EM_DIST_NODE_SIZE="2")
    record = em_dist.load_run(next(p for p in run_parent.iterdir() if p.name.startswith("hvd_gather")))
    said = [line for line in (proc.stdout + proc.stderr).splitlines() if "em_dist" in line]
    assert record.status == "Succeeded" and record.lost_ranks == [], said
    assert record.world.get("relayed_by") == {"3": 2}, (record.world, said)  # em_dist's warnings say why not
    for rank, count in counts.items():
        assert [p["step"] for p in record.metrics(type="train", name="loss", rank=rank)] == list(range(count))


def test_example_via_launch_recipe(tmp_path: Path, run_parent: Path) -> None:
    """``launch/horovodrun.sh`` runs the Horovod example as the launch README says."""
    import em_dist

    env = python_env(PYTHON=PYTHON)
    env["PATH"] = str(Path(PYTHON).parent) + os.pathsep + env.get("PATH", "")
    example = REPO / "examples" / "horovod" / "train_mnist_hvd.py"
    cmd = [str(REPO / "launch" / "horovodrun.sh"), str(example),
           "--epochs", "1", "--train-size", "320", "--test-size", "64", "--log-every", "1"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    (path,) = run_parent.iterdir()
    record = em_dist.load_run(path)
    assert record.status == "Succeeded" and record.world["size"] == 2
    # 256 training examples, 2 ranks, batch 32: 4 steps per rank, each logged once.
    for rank in (0, 1):
        assert [p["step"] for p in record.metrics(type="train", name="loss", rank=rank)] == [1, 2, 3, 4]
        assert len(record.metrics(type="val", name="accuracy", rank=rank)) == 1
        assert len(record.metrics(type="test", name="accuracy_avg", rank=rank)) == 1
    assert sorted(a.name for a in record.artifacts) == ["mnist_horovod_saved_model"] * 2


def test_refuses_when_stall_shutdown_is_armed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rank-0-only run could let Horovod's stall shutdown stop the job: no channel then."""
    from em_dist.ranks.horovod import HorovodRoot
    from em_dist.errors import DistributedError

    monkeypatch.setenv("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", "120")
    with pytest.raises(DistributedError, match="STALL_SHUTDOWN"):
        HorovodRoot(rank=0, world_size=2)
    monkeypatch.setenv("HOROVOD_STALL_CHECK_DISABLE", "1")  # no stall check, no shutdown
    HorovodRoot(rank=0, world_size=2)


def test_not_initialised_needs_the_layout() -> None:
    """Without hvd.init() the channel needs rank/world from the launcher; it never calls hvd.init()."""
    import horovod.torch as hvd

    from em_dist.ranks.horovod import HorovodPeer, HorovodRoot
    from em_dist.errors import DistributedError

    with pytest.raises(DistributedError):
        HorovodRoot()
    with pytest.raises(DistributedError):
        HorovodPeer()
    single = HorovodRoot(rank=0, world_size=1)
    single.start(lambda src, msg: None)
    end = single.close(1.0, join_grace=1.0)
    assert single.connected and end.lost == set() and end.absent == set()
    assert not hvd.is_initialized()


def test_mpi_before_hvd_init_falls_back_to_rounds_with_a_warning(tmp_path: Path, run_parent: Path) -> None:
    """Under --mpi, a create_run before hvd.init() cannot know MPI's thread level: the rounds, said once."""
    import em_dist

    script = RUN_SCRIPT.replace(
        'hvd.init()\nimport em_dist as em\n\nrank = hvd.rank()\nrun = em.create_run(name="hvd_gather", dist_timeout=30)\n',
        'import em_dist as em\nrun = em.create_run(name="hvd_gather", dist_timeout=30)\nhvd.init()\nrank = hvd.rank()\n')
    assert script != RUN_SCRIPT
    proc = _horovodrun("mpi", script, tmp_path)
    assert "alltoall rounds" in proc.stdout + proc.stderr
    runs = {p.name.rsplit("_", 3)[0]: p for p in run_parent.iterdir()}
    record = em_dist.load_run(runs["hvd_gather"])
    assert record.status == "Succeeded" and record.world["transport"] == "horovod"
    for rank, count in COUNTS.items():
        assert [p["step"] for p in record.metrics(type="train", name="loss", rank=rank)] == list(range(count))
