"""The README's demo: train, track, show (the distributed + upload parts land with their issues)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    work = REPO / ".em" / "demo"
    work.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(REPO / "examples/single_device/train_mnist.py"), "--epochs", "1"], cwd=work, check=True)
    runs = sorted((work / ".em" / "runs").iterdir())
    subprocess.run([sys.executable, "-m", "em_dist.cli.main", "run", "show", str(runs[-1])], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
