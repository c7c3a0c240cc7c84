"""collect_platform: what a user checks on a run's platform tab, probed in real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from em_dist.platform import collect_platform
from em_dist.platform import gpu
from em_dist.platform.launcher import LAUNCHER_VARS, PRESENCE_VARS
from tests.server.harness import fresh_server  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
ALLOWED = set(LAUNCHER_VARS) | set(PRESENCE_VARS)

pytestmark = pytest.mark.timeout(120)


def _probe_in_subprocess(code: str, extra_env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh interpreter; it must print one JSON object as its last line."""
    env = {k: v for k, v in os.environ.items() if k not in ALLOWED and not k.startswith("NCCL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra_env or {})
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=90, check=False
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_keys_present_and_typed() -> None:
    info = collect_platform(local_rank=0)
    json.loads(json.dumps(info))  # JSON-safe as is
    assert isinstance(info["host"], str) and info["host"]
    assert isinstance(info["os"], str) and info["os"]
    assert info["python"] == "{}.{}.{}".format(*sys.version_info[:3])
    assert info["python_executable"] == sys.executable
    assert isinstance(info["cpu_model"], str) and info["cpu_model"]
    assert isinstance(info["cpu_count"], int) and info["cpu_count"] >= 1
    assert isinstance(info["cpu_count_available"], int) and 1 <= info["cpu_count_available"] <= info["cpu_count"]
    assert isinstance(info["memory_total_bytes"], int) and info["memory_total_bytes"] > 2**26
    assert info["pid"] == os.getpid()
    assert info["cwd"] == os.getcwd()
    assert info["command"] == sys.argv
    for key in ("torch", "cuda_version", "cudnn_version", "nccl_version", "gpu_driver", "numpy"):
        assert info[key] is None or isinstance(info[key], str), key
    assert info["cuda_available"] in (None, True, False)
    assert isinstance(info["gpus"], list)
    assert info["device"] in ("cpu", "cuda:0", None)
    assert info["local_rank"] == 0
    assert isinstance(info["launcher_env"], dict)
    assert isinstance(info["nccl_env_names"], list)


def test_does_not_import_torch_or_numpy_and_is_quick() -> None:
    code = (
        "import json, sys, time\n"
        "from em_dist.platform import collect_platform\n"
        "t = time.perf_counter(); info = collect_platform(); dt = time.perf_counter() - t\n"
        "print(json.dumps({'info': info, 'ms': dt * 1000,\n"
        "                  'torch': 'torch' in sys.modules, 'numpy': 'numpy' in sys.modules}))\n"
    )
    result = _probe_in_subprocess(code)
    assert result["torch"] is False and result["numpy"] is False
    info = result["info"]
    assert info["torch"] is None and info["cuda_available"] is None and info["numpy"] is None
    assert info["gpus"] == [] and info["device"] is None  # no torch: the device is not known, not guessed
    assert info["mpi"] is None
    assert result["ms"] < 150, f"collect_platform took {result['ms']:.1f} ms"


def test_torch_fields_filled_when_user_imported_torch() -> None:
    pytest.importorskip("torch")
    code = (
        "import json, torch\n"
        "from em_dist.platform import collect_platform\n"
        "info = collect_platform(local_rank=0)\n"
        "print(json.dumps({'info': info, 'version': torch.__version__, 'cuda': torch.version.cuda,\n"
        "                  'available': torch.cuda.is_available(), 'count': torch.cuda.device_count()}))\n"
    )
    result = _probe_in_subprocess(code)
    info = result["info"]
    assert info["torch"] == result["version"]
    assert info["cuda_available"] is result["available"]
    assert info["cuda_version"] == result["cuda"]
    if result["available"]:
        assert info["device"] is None  # the script did not touch CUDA yet: no guess
        assert len(info["gpus"]) == result["count"]
        for i, g in enumerate(info["gpus"]):
            assert g["index"] == i and g["name"] and g["memory_total_bytes"] > 0
            assert g["compute_capability"].count(".") == 1
    else:
        assert info["device"] == "cpu" and info["gpus"] == []
        assert info["nccl_version"] is None or result["cuda"]


def test_launcher_env_is_an_allow_list_without_secrets() -> None:
    secrets = {"MY_API_TOKEN": "tok-7f3a9c", "AWS_SECRET_ACCESS_KEY": "aws-51b2e8", "EM_API_KEY": "em-0c4d1f"}
    launcher = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.1.2.3", "SLURM_JOB_ID": "991"}
    extra = {**secrets, **launcher, "KUBERNETES_SERVICE_HOST": "10.96.0.1", "NCCL_DEBUG": "INFO"}
    code = "import json\nfrom em_dist.platform import collect_platform\nprint(json.dumps(collect_platform(1)))\n"
    info = _probe_in_subprocess(code, extra)
    env = info["launcher_env"]
    assert set(env) <= ALLOWED
    assert {k: env[k] for k in launcher} == launcher
    assert env["KUBERNETES_SERVICE_HOST"] is True  # presence only, never the value
    assert info["nccl_env_names"] == ["NCCL_DEBUG"]
    text = json.dumps(info)
    for name, value in secrets.items():
        assert name not in text and value not in text
    assert "10.96.0.1" not in text and "INFO" not in text


def test_broken_torch_does_not_raise() -> None:
    # A half-installed torch (its cuda module raises) must leave fields None, not fail create_run.
    code = (
        "import json, sys, types\n"
        "class Broken(types.ModuleType):\n"
        "    @property\n"
        "    def cuda(self): raise RuntimeError('libcuda exploded')\n"
        "    @property\n"
        "    def version(self): raise RuntimeError('no version module')\n"
        "torch = Broken('torch'); torch.__version__ = '9.9.9'\n"
        "sys.modules['torch'] = torch\n"
        "from em_dist.platform import collect_platform\n"
        "print(json.dumps(collect_platform(local_rank=0)))\n"
    )
    info = _probe_in_subprocess(code)
    assert info["torch"] == "9.9.9"
    assert info["cuda_available"] is None and info["cuda_version"] is None and info["nccl_version"] is None
    assert info["gpus"] == [] and info["device"] is None


def test_bad_local_rank_does_not_raise() -> None:
    info = collect_platform(local_rank="zero")  # type: ignore[arg-type]
    assert info["local_rank"] is None and info["device"] in ("cpu", None)


@pytest.mark.parametrize(
    ("raw", "text"),
    [((2, 21, 5), "2.21.5"), ((2, 19, 3, "+cuda12.2"), "2.19.3"), (21803, "2.18.3"), (2708, "2.7.8"), (0, None)],
)
def test_nccl_version_formats(raw: object, text: str | None) -> None:
    assert gpu.format_nccl_version(raw) == text


@pytest.mark.parametrize(("code", "text"), [(90100, "9.1.0"), (8902, "8.9.2"), (7605, "7.6.5")])
def test_cudnn_version_formats(code: int, text: str) -> None:
    assert gpu.format_cudnn_version(code) == text


def test_driver_version_from_proc_text() -> None:
    proc = (
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n"
        "GCC version:  gcc version 11.4.0\n"
    )
    assert gpu.parse_driver_version(proc) == "535.104.05"
    open_kernel = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.54.15  Release Build\n"
    assert gpu.parse_driver_version(open_kernel) == "550.54.15"
    assert gpu.parse_driver_version("garbage") is None


def test_a_script_that_imported_mpi4py_uploads_its_run(fresh_server, tmp_path: Path) -> None:  # noqa: F811
    """A script that imported mpi4py (Lightning's environment detection does, in-process) gets the MPI
    library in its platform. Open MPI's version string ends in a NUL byte, which the server refuses in
    any text: the probe keeps the text before it, so the run uploads."""
    pytest.importorskip("mpi4py")
    code = (
        "import json\n"
        "from mpi4py import MPI\n"
        "import em_dist as em\n"
        "run = em.create_run(name='with-mpi', capture_output=False, system_metrics_interval=0)\n"
        "run.log(type='train', metrics={'loss': 1.0}, step=0)\n"
        "run.finish()\n"
        "print(json.dumps({'path': str(run.path), 'mpi': run.platform.get('mpi')}))\n"
    )
    result = _probe_in_subprocess(code)
    mpi = result["mpi"]
    assert mpi and mpi["library"].startswith("Open MPI") and "\x00" not in mpi["library"], mpi
    _, key = fresh_server.add_user()
    import em_dist as em

    uploaded = em.upload(result["path"], host=fresh_server.url, api_key=key)
    assert uploaded.server_run_id  # type: ignore[union-attr]
