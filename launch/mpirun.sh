#!/usr/bin/env bash
# mpirun (OpenMPI): NP processes (default 2) on this host, or on HOSTFILE.
#
#   launch/mpirun.sh [SCRIPT [ARGS...]]
#   NP=4 launch/mpirun.sh examples/mpi/train_mpi.py --steps 50
#   NP=8 HOSTFILE=hosts.txt launch/mpirun.sh
#
# SCRIPT defaults to examples/mpi/train_mpi.py (mpi4py + NumPy, no torch). More ranks
# than cores are allowed (--oversubscribe); as root the OpenMPI root guard is lifted.
# PYTHONPATH and the EM_* variables are passed to every rank.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
script="${1:-$here/../examples/mpi/train_mpi.py}"
[[ $# -gt 0 ]] && shift
args=(-np "${NP:-2}" --oversubscribe)
[[ -n "${HOSTFILE:-}" ]] && args+=(--hostfile "$HOSTFILE")
[[ "$(id -u)" == 0 ]] && args+=(--allow-run-as-root)
for var in PYTHONPATH $(compgen -e | grep '^EM_' || true); do
    [[ -n "${!var:-}" ]] && args+=(-x "$var")
done
exec mpirun "${args[@]}" "${PYTHON:-python}" "$script" "$@"
