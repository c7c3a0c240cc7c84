#!/usr/bin/env bash
# Build (once) and install Horovod 0.28.1 with PyTorch, Gloo and MPI support into the
# current Python environment.
#
# Horovod 0.28.1 does not build as published against torch 2.13: pip's build isolation
# hides torch, and its CMake files pin C++14 while torch needs C++17. We download the
# sdist, raise CMAKE_CXX_STANDARD to 17, and build a wheel without build isolation.
# The wheel is cached outside the repo, keyed by horovod + torch + Python version, so a
# second run only installs it (seconds).
#
# Needs: cmake, g++, OpenMPI dev files (apt: openmpi-bin libopenmpi-dev), torch installed.
# Environment:
#   PYTHON          interpreter of the target env (default: python3 on PATH)
#   EM_WHEEL_CACHE  wheel cache folder (default: $HOME/.cache/em_dist/wheels)
#   HOROVOD_VERSION (default 0.28.1)
set -euo pipefail

PYTHON="${PYTHON:-python3}"
HOROVOD_VERSION="${HOROVOD_VERSION:-0.28.1}"
CACHE="${EM_WHEEL_CACHE:-$HOME/.cache/em_dist/wheels}"

for tool in cmake g++ mpicxx; do
    command -v "$tool" >/dev/null || { echo "horovod.sh: '$tool' not found (apt: cmake g++ openmpi-bin libopenmpi-dev)" >&2; exit 2; }
done

torch_version="$("$PYTHON" -c 'import torch; print(torch.__version__)')" || {
    echo "horovod.sh: torch is not importable by $PYTHON; install torch first" >&2; exit 2; }
py_tag="$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
key="horovod-${HOROVOD_VERSION}_torch-${torch_version//+/_}_${py_tag}"
slot="$CACHE/$key"
mkdir -p "$slot"

installed_ok() {
    "$PYTHON" - "$HOROVOD_VERSION" <<'PY'
import sys
try:
    import horovod, horovod.torch  # noqa: F401
except Exception:
    sys.exit(1)
sys.exit(0 if horovod.__version__ == sys.argv[1] else 1)
PY
}

if installed_ok; then
    echo "horovod.sh: horovod $HOROVOD_VERSION already installed for torch $torch_version"
    exit 0
fi

# One build at a time per cache slot (parallel CI jobs on one machine wait for it).
exec 9>"$slot/.lock"
flock 9

wheel="$(ls "$slot"/horovod-"$HOROVOD_VERSION"-*.whl 2>/dev/null | head -n1 || true)"
if [[ -z "$wheel" ]]; then
    echo "horovod.sh: building horovod $HOROVOD_VERSION for torch $torch_version ($py_tag); takes a few minutes"
    "$PYTHON" -m pip install --quiet cloudpickle psutil pyyaml packaging cffi wheel setuptools
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: -d "$work" "horovod==$HOROVOD_VERSION"
    tar -xzf "$work"/horovod-"$HOROVOD_VERSION".tar.gz -C "$work"
    src="$work/horovod-$HOROVOD_VERSION"
    for f in "$src/CMakeLists.txt" "$src/horovod/torch/CMakeLists.txt"; do
        sed -i -E 's/(CMAKE_CXX_STANDARD[[:space:]]+)14/\117/' "$f"
        grep -qE 'CMAKE_CXX_STANDARD[[:space:]]+17' "$f" || {
            echo "horovod.sh: could not raise C++ standard in $f" >&2; exit 1; }
    done
    HOROVOD_WITH_PYTORCH=1 HOROVOD_WITHOUT_TENSORFLOW=1 HOROVOD_WITHOUT_MXNET=1 \
    HOROVOD_WITH_GLOO=1 HOROVOD_WITH_MPI=1 \
    MAKEFLAGS="${MAKEFLAGS:--j$(nproc)}" \
        "$PYTHON" -m pip wheel --no-build-isolation --no-deps -w "$work/dist" "$src"
    cp "$work"/dist/horovod-*.whl "$slot/"
    wheel="$(ls "$slot"/horovod-"$HOROVOD_VERSION"-*.whl | head -n1)"
fi

"$PYTHON" -m pip install --quiet cloudpickle psutil pyyaml packaging cffi
"$PYTHON" -m pip install --quiet --no-deps --force-reinstall "$wheel"
installed_ok || { echo "horovod.sh: horovod installed but horovod.torch does not import" >&2; exit 1; }
echo "horovod.sh: installed $(basename "$wheel")"
