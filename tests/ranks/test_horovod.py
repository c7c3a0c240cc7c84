"""The Horovod engine under the real launcher: ``horovodrun -np 2 --gloo`` and ``--mpi``.

Two scripts run under horovodrun: a contract scenario on :class:`HorovodChannel`
itself (exactly once, in order, within 2 s; bounded close when a peer never says
goodbye; rank-0-only use), and a training-style script on ``em_dist.create_run``
whose gathered points are read back with ``em_dist.load_run``.

Horovod is built by ``.ci/horovod.sh``; without it these tests skip locally and fail
in CI (``CI`` set).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import PYTHON, REPO, python_env

pytestmark = pytest.mark.timeout(180)

_HAVE_HOROVOD = importlib.util.find_spec("horovod") is not None
if not _HAVE_HOROVOD:
    if os.environ.get("CI"):
        pytest.fail("horovod is not installed (CI runs .ci/horovod.sh first)", pytrace=False)
    pytest.skip("horovod is not installed (run .ci/horovod.sh)", allow_module_level=True)

HOROVODRUN = shutil.which("horovodrun") or str(Path(PYTHON).with_name("horovodrun"))
CONTROLLERS = ["gloo", "mpi"]

# Rank r posts/logs this many items; ranks differ on purpose.
COUNTS = {0: 40, 1: 95}

CHANNEL_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path

    out = Path(sys.argv[1])
    env = os.environ
    rank = int(env.get("HOROVOD_RANK", env.get("OMPI_COMM_WORLD_RANK", "-1")))
    size = int(env.get("HOROVOD_SIZE", env.get("OMPI_COMM_WORLD_SIZE", "-1")))

    import horovod.torch as hvd
    import torch
    from em_dist.ranks.horovod import HorovodChannel

    def wait_for(cond, seconds):
        deadline = time.monotonic() + seconds
        while not cond():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    result = {"rank": rank}

    # 1. Contract: created before hvd.init(); rank r posts COUNT[r] messages while the
    #    training thread runs its own allreduces; rank 0 gets each exactly once, in order.
    got, latency = {}, []
    def deliver(src, msg):
        got.setdefault(src, []).append(msg[1])
        latency.append(time.time() - msg[2])
    a = HorovodChannel(rank=rank, world_size=size, nonce="contract")
    a.start(deliver if rank == 0 else None)
    count = COUNTS[str(rank)]
    for i in range(10):
        a.post((rank, i, time.time()))
    hvd.init()
    for i in range(150):
        if 10 <= i < count:
            a.post((rank, i, time.time()))
        hvd.allreduce(torch.ones(8), name=f"user.{i}")
    started = time.monotonic()
    result["contract"] = {
        "lost": sorted(a.close(20.0)), "close_s": time.monotonic() - started,
        "got": {str(k): v for k, v in got.items()}, "max_latency_s": max(latency, default=0.0),
        "connected": a.connected,
    }

    # 2. A peer that never says goodbye: rank 0's close is bounded and names it lost;
    #    the peer's own late close then returns at once (rank 0 told it to stop).
    got = {}
    b = HorovodChannel(nonce="silent")
    b.start(deliver if rank == 0 else None)
    flag = out / "rank0_closed"
    if rank == 0:
        wait_for(lambda: len(got.get(1, [])) == 30, 10)
        started = time.monotonic()
        lost = b.close(1.0)
        result["silent"] = {"lost": sorted(lost), "close_s": time.monotonic() - started,
                            "got": len(got.get(1, []))}
        flag.write_text("x")
    else:
        for i in range(30):
            b.post((rank, i, time.time()))
        wait_for(flag.exists, 30)
        started = time.monotonic()
        b.close(10.0)
        result["silent"] = {"close_s": time.monotonic() - started}

    # 3. Rank-0-only: only rank 0 opens a channel; close returns after the grace with
    #    no lost ranks, and training (allreduce) is not disturbed.
    if rank == 0:
        c = HorovodChannel(nonce="alone", connect_grace=1.0)
        c.start(deliver)
        started = time.monotonic()
        lost = c.close(20.0)
        result["alone"] = {"lost": sorted(lost), "close_s": time.monotonic() - started,
                           "absent": sorted(c.absent), "connected": c.connected}
    total = sum(hvd.allreduce(torch.ones(1) * (k + 1), name=f"after.{k}", op=hvd.Sum).item()
                for k in range(20))
    result["after_allreduce"] = total
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    """
)

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


def _horovodrun(controller: str, script: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(f"COUNTS = {json.dumps({str(k): v for k, v in COUNTS.items()})}\n" + script)
    env = python_env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env["PATH"] = str(Path(PYTHON).parent) + os.pathsep + env.get("PATH", "")
    cmd = [HOROVODRUN, "-np", "2", "-H", "localhost:2", f"--{controller}", PYTHON, str(path), *args]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, f"horovodrun failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_channel_contract(controller: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    _horovodrun(controller, CHANNEL_SCRIPT, tmp_path, str(out))
    root = json.loads((out / "rank0.json").read_text())
    peer = json.loads((out / "rank1.json").read_text())

    contract = root["contract"]
    assert contract["connected"]
    assert contract["got"] == {"1": list(range(COUNTS[1]))}  # exactly once, in order
    assert contract["lost"] == []
    assert contract["max_latency_s"] < 2.0
    assert peer["contract"]["lost"] == [] and peer["contract"]["close_s"] < 5.0

    silent = root["silent"]
    assert silent["got"] == 30 and silent["lost"] == [1]
    assert silent["close_s"] < 2.5
    assert peer["silent"]["close_s"] < 2.0

    alone = root["alone"]
    assert alone["lost"] == [] and alone["absent"] == [1] and not alone["connected"]
    assert alone["close_s"] < 2.5
    assert root["after_allreduce"] == peer["after_allreduce"] == 2 * sum(range(1, 21))


@pytest.mark.parametrize("controller", CONTROLLERS)
def test_run_gathers_every_rank(controller: str, tmp_path: Path, run_parent: Path) -> None:
    import em_dist

    proc = _horovodrun(controller, RUN_SCRIPT, tmp_path)
    runs = {p.name.rsplit("_", 3)[0]: p for p in run_parent.iterdir()}
    assert sorted(runs) == ["hvd_gather", "hvd_rank0_only"], proc.stdout

    record = em_dist.load_run(runs["hvd_gather"])
    assert record.status == "Succeeded" and record.lost_ranks == []
    assert record.world["size"] == 2 and record.world["transport"] == "horovod"
    for rank, count in COUNTS.items():
        steps = [p["step"] for p in record.metrics(type="train", name="loss", rank=rank)]
        assert steps == list(range(count))  # each point exactly once
        values = {p["value"] for p in record.metrics(type="train", name="rank", rank=rank)}
        assert values == {rank}

    solo = em_dist.load_run(runs["hvd_rank0_only"])
    assert solo.status == "Succeeded" and solo.ranks() == [0]
    finish_s = float((tmp_path / "solo_finish_s.txt").read_text())
    assert finish_s < 5.0


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
    from em_dist.ranks.horovod import HorovodChannel
    from em_dist.errors import DistributedError

    monkeypatch.setenv("HOROVOD_STALL_SHUTDOWN_TIME_SECONDS", "120")
    with pytest.raises(DistributedError, match="STALL_SHUTDOWN"):
        HorovodChannel(rank=0, world_size=2)
    monkeypatch.setenv("HOROVOD_STALL_CHECK_DISABLE", "1")  # no stall check, no shutdown
    HorovodChannel(rank=0, world_size=2)


def test_not_initialised_needs_the_layout() -> None:
    """Without hvd.init() the channel needs rank/world from the launcher; it never calls hvd.init()."""
    import horovod.torch as hvd

    from em_dist.ranks.horovod import HorovodChannel
    from em_dist.errors import DistributedError

    with pytest.raises(DistributedError):
        HorovodChannel()
    single = HorovodChannel(rank=0, world_size=1)
    single.start(lambda src, msg: None)
    assert single.connected and single.close(1.0) == set()
    assert not hvd.is_initialized()
