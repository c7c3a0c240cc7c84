#!/usr/bin/env bash
# torchrun on one node: NPROC processes (default 2), rendezvous on this host only.
#
#   launch/torchrun_single_node.sh [SCRIPT [ARGS...]]
#   NPROC=4 launch/torchrun_single_node.sh examples/ddp/train_mnist_ddp.py --epochs 1
#
# SCRIPT defaults to examples/ddp/train_mnist_ddp.py. PYTHON picks the interpreter
# (default: python on PATH, e.g. an activated venv).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="${1:-$here/../examples/ddp/train_mnist_ddp.py}"
[[ $# -gt 0 ]] && shift
exec "${PYTHON:-python}" -m torch.distributed.run \
    --standalone --nproc_per_node="${NPROC:-2}" \
    "$script" "$@"
