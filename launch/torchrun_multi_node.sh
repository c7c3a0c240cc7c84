#!/usr/bin/env bash
# torchrun on several nodes: run this once on every node, with the same MASTER_ADDR,
# MASTER_PORT and JOB_ID and that node's NODE_RANK (0 .. NNODES-1).
#
#   # on node 0 (its address is the rendezvous endpoint)
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 launch/torchrun_multi_node.sh examples/ddp/train_mnist_ddp.py
#   # on node 1
#   NNODES=2 NODE_RANK=1 MASTER_ADDR=10.0.0.1 launch/torchrun_multi_node.sh examples/ddp/train_mnist_ddp.py
#
# Variables: NNODES (default 1), NODE_RANK (0), NPROC per node (2), MASTER_ADDR
# (127.0.0.1), MASTER_PORT (29500), JOB_ID (em_dist_job), PYTHON (python).
# With the c10d rendezvous torchrun assigns node ranks itself; NODE_RANK is passed for
# launchers and logs that expect it. em_dist needs nothing more: it reads the ranks
# torchrun sets and gathers every rank's records into the run on global rank 0.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="${1:-$here/../examples/ddp/train_mnist_ddp.py}"
[[ $# -gt 0 ]] && shift
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --nproc_per_node="${NPROC:-2}" \
    --rdzv_backend=c10d \
    --rdzv_endpoint="${MASTER_ADDR:-127.0.0.1}:${MASTER_PORT:-29500}" \
    --rdzv_id="${JOB_ID:-em_dist_job}" \
    "$script" "$@"
