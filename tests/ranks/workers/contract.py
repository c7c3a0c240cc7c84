"""The channel contract, run under a real launcher: every peer's messages reach rank 0 exactly once, in order.

``--mode contract``: each peer r sends ``count + r`` messages ``("m", r, i, payload)`` in
batches (one of them several MB, so frames split and large sends work), says goodbye;
rank 0 records what it got. ``--mode silent``: peers send 30 messages and say goodbye only
after rank 0 gave up on them (rank 0 must name them lost, within its timeout).
``--mode alone``: only rank 0 opens a channel (a rank-0-only script): its close is quick
and names every peer absent. Usable with any engine em_dist picks as create_run would
(torchrun -> gloo pairs, mpirun + mpi4py -> MPI, horovodrun -> Horovod rounds).
Result: ``$EM_TEST_OUT/rank-<r>.json``.
"""

import argparse
import json
import os
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--count", type=int, default=300)
p.add_argument("--mpi", action="store_true", help="import mpi4py first, as an MPI script does")
p.add_argument("--horovod", action="store_true", help="hvd.init() first, as a Horovod script does")
p.add_argument("--timeout", type=float, default=30.0)
p.add_argument("--mode", choices=("contract", "silent", "alone"), default="contract")
p.add_argument("--count-threads", action="store_true",
               help="rank 0 counts its threads once every peer's messages arrived; peers say goodbye after that")
args = p.parse_args()
if args.mpi:
    from mpi4py import MPI  # noqa: F401
if args.horovod:
    import horovod.torch as hvd

    hvd.init()

from em_dist.ranks.messages import ArtifactChunk
from em_dist.ranks.engines import Meeting, open_channel
from em_dist.ranks.timing import RankTimings
from em_dist.ranks.world import detect_world
from tests.poll import wait_for

world = detect_world()
timings = RankTimings.from_env(args.timeout)
out = os.environ["EM_TEST_OUT"]
rank0_closed = os.path.join(out, "rank0-closed")
rank0_counted = os.path.join(out, "rank0-counted")


def os_threads() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/task"))
got: dict[int, list[int]] = {}
sizes: dict[int, int] = {}


def deliver(src, msg):
    assert isinstance(msg, ArtifactChunk) and msg.alt == f"rank-{src}"
    got.setdefault(src, []).append(msg.offset)
    sizes[src] = sizes.get(src, 0) + len(msg.data)


t0 = time.monotonic()
result = {"rank": world.rank, "mode": args.mode}
channel = None
if world.rank == 0 or args.mode != "alone":
    meeting = Meeting(f"contract/{args.mode}", 0, {"id": "contract", "alternative_name": "c", "path": "/c"})
    channel, engine = open_channel(world, meeting, timings)
    result.update(engine=engine, transport=channel.transport)
if world.rank == 0:
    threads_before = os_threads()
    channel.start(deliver)
    if args.count_threads:
        import threading

        n = world.world_size
        wait_for(lambda: all(len(got.get(r, [])) == args.count + r for r in range(1, n)), 60, "every message")
        result.update(em_threads=sorted(t.name for t in threading.enumerate() if t.name.startswith("em_dist")),
                      os_threads_added=os_threads() - threads_before)
        open(rank0_counted, "w").close()
    if args.mode == "silent":
        wait_for(lambda: all(len(got.get(r, [])) == 30 for r in range(1, world.world_size)), 20, "the peers' 30 messages")
    t0 = time.monotonic()
    end = channel.close(args.timeout, 1.0 if args.mode == "alone" else timings.root_join_grace)
    result.update(lost=sorted(end.lost), late=sorted(end.late), absent=sorted(end.absent), close_s=time.monotonic() - t0)
    open(rank0_closed, "w").close()
elif channel is not None:
    while not channel.connect(1.0):
        pass
    n = 30 if args.mode == "silent" else args.count + world.rank
    msgs = [ArtifactChunk(f"rank-{world.rank}", "m", i, b"x" * (5_000_000 if i == n // 2 and n > 30 else 10))
            for i in range(n)]
    for start in range(0, n, 50):
        channel.send(msgs[start:start + 50])
    if args.mode == "silent":
        wait_for(lambda: os.path.exists(rank0_closed), 30, "rank 0 to give up")
    if args.count_threads:
        wait_for(lambda: os.path.exists(rank0_counted), 60, "rank 0 to count its threads")
    t0 = time.monotonic()
    result["goodbye"] = channel.goodbye(args.timeout) is not None  # an Ack (possibly confirming nothing), or None
    result["goodbye_s"] = time.monotonic() - t0
    result["rank0_run"] = channel.rank0_run
    channel.shutdown()
result.update(seconds=time.monotonic() - t0, got={str(k): v for k, v in got.items()},
              bytes={str(k): v for k, v in sizes.items()}, connected=getattr(channel, "connected", None))
if args.horovod:
    # training collectives still work after em_dist's rounds
    import torch

    result["after_allreduce"] = sum(hvd.allreduce(torch.ones(1) * (k + 1), name=f"after.{k}", op=hvd.Sum).item()
                                    for k in range(20))
with open(os.path.join(out, f"rank-{world.rank}.json"), "w") as f:
    json.dump(result, f)
sys.stdout.flush()
