"""The training side never imports the server, and uploading needs no server package."""

from __future__ import annotations

import subprocess
import textwrap

from tests.conftest import PYTHON, python_env


def test_sdk_does_not_import_the_server(tmp_path) -> None:
    code = textwrap.dedent(
        """
        import sys
        import em_dist as em
        import em_dist.client.upload, em_dist.client.sync, em_dist.client.read
        run = em.create_run(name="x")
        run.log(type="train", metrics={"loss": 1.0}, step=0)
        run.finish()
        bad = sorted(m for m in sys.modules if m.startswith(("em_dist.server", "fastapi", "sqlalchemy", "uvicorn")))
        print(bad)
        """
    )
    out = subprocess.run([PYTHON, "-c", code], cwd=tmp_path, env=python_env(), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
