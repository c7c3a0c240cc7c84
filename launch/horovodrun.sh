#!/usr/bin/env bash
# horovodrun: NP processes (default 2) on HOSTS (default localhost:NP), with the Gloo
# controller (default) or MPI (CONTROLLER=mpi).
#
#   launch/horovodrun.sh [SCRIPT [ARGS...]]
#   CONTROLLER=mpi NP=2 launch/horovodrun.sh examples/horovod/train_mnist_hvd.py --epochs 1
#   NP=8 HOSTS=node1:4,node2:4 launch/horovodrun.sh        # two nodes, passwordless ssh
#
# SCRIPT defaults to examples/horovod/train_mnist_hvd.py. Horovod must be built with
# PyTorch support (.ci/horovod.sh does it). PYTHON picks the interpreter.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="${1:-$here/../examples/horovod/train_mnist_hvd.py}"
[[ $# -gt 0 ]] && shift
np="${NP:-2}"
python="${PYTHON:-python}"
if [[ "$(id -u)" == 0 ]]; then  # OpenMPI refuses root unless told (containers, CI)
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
horovodrun="$(dirname "$(command -v "$python")")/horovodrun"
[[ -x "$horovodrun" ]] || horovodrun=horovodrun
exec "$horovodrun" -np "$np" -H "${HOSTS:-localhost:$np}" "--${CONTROLLER:-gloo}" \
    "$python" "$script" "$@"
