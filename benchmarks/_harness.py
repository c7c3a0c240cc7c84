"""Run one timed workload in a fresh Python process and measure it.

A workload is four snippets of Python source: ``setup`` (untimed), ``pre_step``
(untimed, runs before each step), ``step`` (timed, once per step) and ``finish``
(timed once: the final flush/close). The snippets are pasted into a generated
script, so the timed statement runs inline, without an extra function call.
Names the snippets can use: ``i`` (step index), ``N`` (number of steps),
``out_dir`` (an empty folder the workload may write to), ``os``, ``time`` and
``EXTRA`` (a dict whose contents come back in :attr:`Result.extra`).

The child measures per-step latency (``perf_counter_ns``), the finish time, its
resident memory (current RSS before the loop, peak RSS over the loop and finish,
peak RSS of the whole process) and the RSS of any child processes it started;
the parent adds the bytes left in ``out_dir`` once the child has exited.
"""

from __future__ import annotations

import array
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TEMPLATE = '''\
import array, json, os, sys, time
_perf = time.perf_counter_ns
N = int(sys.argv[1]); out_dir = sys.argv[2]; _result = sys.argv[3]
EXTRA = {{}}

def _status_kb(key):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    if key == "VmHWM:":
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return 0

def _reset_peak():
    """Reset the kernel's peak-RSS mark (Linux >= 4.0) so the loop's peak is measured alone."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False

def _children_kb():
    try:
        import psutil
    except ImportError:
        return None
    total = 0
    for c in psutil.Process().children(recursive=True):
        try:
            total += c.memory_info().rss
        except psutil.Error:
            pass
    return total // 1024

_t0 = _perf()
for _ in range(10000):
    _t1 = _perf()
    _x = _perf() - _t1
_timer_floor_ns = (_perf() - _t0) / 10000

_lat = array.array("q", bytes(8 * N))  # allocated before the baseline so it is not counted as growth
{setup}
_peak_setup_kb = _status_kb("VmHWM:")
_reset_ok = _reset_peak()
_rss_before_kb = _status_kb("VmRSS:")
_loop0 = _perf()
for i in range(N):
{pre_step}
    _t0 = _perf()
{step}
    _lat[i] = _perf() - _t0
_loop_ns = _perf() - _loop0
_rss_after_loop_kb = _status_kb("VmRSS:")
_children_after_loop_kb = _children_kb()
{after_loop}
_t0 = _perf()
{finish}
_finish_ns = _perf() - _t0
_peak_run_kb = _status_kb("VmHWM:")
with open(_result + ".lat", "wb") as f:
    _lat.tofile(f)
with open(_result, "w") as f:
    json.dump(dict(
        timer_floor_ns=_timer_floor_ns, loop_ns=_loop_ns, finish_ns=_finish_ns,
        rss_before_kb=_rss_before_kb, rss_after_loop_kb=_rss_after_loop_kb,
        peak_setup_kb=_peak_setup_kb, peak_run_kb=_peak_run_kb, peak_reset=_reset_ok,
        children_kb=_children_after_loop_kb, extra=EXTRA,
    ), f)
'''


@dataclass
class Workload:
    """What to run: Python snippets (see the module docstring) and the environment to add."""

    name: str
    setup: str
    step: str
    finish: str = "pass"
    pre_step: str = "pass"
    after_loop: str = "pass"
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""


@dataclass
class Result:
    """What one fresh-process run of a workload measured; ``error`` is set when it could not run."""

    name: str
    steps: int
    latencies_ns: list[int] = field(default_factory=list)
    loop_s: float = 0.0
    finish_s: float = 0.0
    rss_before_mb: float = 0.0
    rss_after_loop_mb: float = 0.0
    peak_loop_mb: float = 0.0
    peak_process_mb: float = 0.0
    peak_reset: bool = False
    children_mb: float | None = None
    disk_bytes: int = 0
    timer_floor_ns: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    error: str | None = None

    def percentile_us(self, q: float) -> float:
        """The ``q``-th percentile (0..100) of per-step latency, in microseconds (nearest rank)."""
        lat = self.latencies_ns
        if not lat:
            return float("nan")
        k = min(len(lat) - 1, max(0, round(q / 100 * (len(lat) - 1))))
        return lat[k] / 1000.0

    @property
    def mean_us(self) -> float:
        """Mean per-step latency in microseconds: unlike the median, it counts the rare long stalls."""
        lat = self.latencies_ns
        return sum(lat) / len(lat) / 1000.0 if lat else float("nan")

    @property
    def rss_growth_mb(self) -> float:
        """Peak RSS during loop + finish minus the RSS just before the loop."""
        return self.peak_loop_mb - self.rss_before_mb


def render_script(w: Workload) -> str:
    """The child script for ``w``: the template with the snippets pasted in."""
    return _TEMPLATE.format(
        setup=textwrap.dedent(w.setup).strip() or "pass",
        pre_step=textwrap.indent(textwrap.dedent(w.pre_step).strip() or "pass", "    "),
        step=textwrap.indent(textwrap.dedent(w.step).strip(), "    "),
        after_loop=textwrap.dedent(w.after_loop).strip() or "pass",
        finish=textwrap.dedent(w.finish).strip() or "pass",
    )


def dir_bytes(path: Path) -> int:
    """Apparent size in bytes of every regular file under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            total += st.st_size
    return total


def _on_terminal(argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> subprocess.CompletedProcess:
    """Run ``argv`` with stdout and stderr on a pseudo-terminal, reading it until every holder closed it."""
    master, slave = os.openpty()
    try:
        child = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    finally:
        os.close(slave)
    shown = bytearray()
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the program and its pass-through closed the terminal
            break
        if not data:
            break
        shown += data[-4096:] if len(shown) > 1 << 16 else data
    os.close(master)
    code = child.wait(timeout)
    text = shown.decode(errors="replace")
    return subprocess.CompletedProcess(argv, code, text, text)


def run_workload(
    w: Workload,
    steps: int,
    *,
    python: str = sys.executable,
    timeout: float = 600.0,
    keep_dir: Path | None = None,
    terminal: bool = False,
) -> Result:
    """Run ``w`` for ``steps`` steps in a fresh ``python`` process; never raises for a failing workload.

    ``terminal``: its stdout and stderr are one pseudo-terminal this process drains (a user's
    terminal), not two pipes (a launcher's)."""
    res = Result(name=w.name, steps=steps, note=w.note)
    with tempfile.TemporaryDirectory(prefix="embench-") as tmp:
        tmp_path = Path(tmp)
        out_dir = Path(keep_dir) if keep_dir is not None else tmp_path / "out"
        out_dir.mkdir(parents=True, exist_ok=True)
        script = tmp_path / "workload.py"
        script.write_text(render_script(w))
        result_file = tmp_path / "result.json"
        env = dict(os.environ)
        env.update({k: v.replace("{out_dir}", str(out_dir)) for k, v in w.env.items()})
        try:
            argv = [python, str(script), str(steps), str(out_dir), str(result_file)]
            if terminal:
                proc = _on_terminal(argv, env, tmp, timeout)
            else:
                proc = subprocess.run(argv, env=env, cwd=tmp, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            res.error = f"timed out after {timeout:.0f} s"
            return res
        if proc.returncode != 0 or not result_file.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            res.error = f"exit {proc.returncode}: " + " | ".join(tail)
            return res
        doc = json.loads(result_file.read_text())
        lat = array.array("q")
        with open(str(result_file) + ".lat", "rb") as f:
            lat.frombytes(f.read())
        res.latencies_ns = sorted(lat)
        res.loop_s = doc["loop_ns"] / 1e9
        res.finish_s = doc["finish_ns"] / 1e9
        res.rss_before_mb = doc["rss_before_kb"] / 1024
        res.rss_after_loop_mb = doc["rss_after_loop_kb"] / 1024
        res.peak_loop_mb = doc["peak_run_kb"] / 1024  # includes setup's peak when the reset failed
        res.peak_reset = bool(doc["peak_reset"])
        res.peak_process_mb = max(doc["peak_setup_kb"], doc["peak_run_kb"]) / 1024
        res.children_mb = None if doc["children_kb"] is None else doc["children_kb"] / 1024
        res.timer_floor_ns = doc["timer_floor_ns"]
        res.extra = doc["extra"]
        res.disk_bytes = dir_bytes(out_dir)
    return res
