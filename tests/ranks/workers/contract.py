"""The Channel contract, run under a real launcher: every peer's messages reach rank 0 exactly once, in order.

Each peer r posts ``count + r`` messages ``("m", r, i, payload)`` (one of them several
MB, so frames split and large sends work), then closes; rank 0 records what it got.
Usable with any engine: ``--engine`` picks one explicitly (torch, mpi, horovod) or
``auto`` lets em_dist choose as create_run would. Result: ``$EM_TEST_OUT/rank-<r>.json``.
"""

import argparse
import json
import os
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--count", type=int, default=300)
p.add_argument("--mpi", action="store_true", help="import mpi4py first, as an MPI script does")
p.add_argument("--timeout", type=float, default=30.0)
args = p.parse_args()
if args.mpi:
    from mpi4py import MPI  # noqa: F401

from em_dist.ranks.world import detect_world
from em_dist.ranks.engines import open_channel

world = detect_world()
channel, engine = open_channel(world, args.timeout)
got: dict[int, list[int]] = {}
sizes: dict[int, int] = {}


def deliver(src, msg):
    kind, rank, i, payload = msg
    assert kind == "m" and rank == src
    got.setdefault(src, []).append(i)
    sizes[src] = sizes.get(src, 0) + len(payload)


t0 = time.monotonic()
if world.rank == 0:
    channel.start(deliver)
else:
    channel.start(None)
    n = args.count + world.rank
    for i in range(n):
        payload = b"x" * (5_000_000 if i == n // 2 else 10)
        channel.post(("m", world.rank, i, payload))
lost = channel.close(args.timeout)
result = {"rank": world.rank, "engine": engine, "lost": sorted(lost), "seconds": time.monotonic() - t0,
          "got": {str(k): v for k, v in got.items()}, "bytes": {str(k): v for k, v in sizes.items()},
          "connected": channel.connected}
out = os.environ["EM_TEST_OUT"]
with open(os.path.join(out, f"rank-{world.rank}.json"), "w") as f:
    json.dump(result, f)
sys.stdout.flush()
