"""The deployment recipes in deploy/ parse, and every EM_* variable they set is one the server reads."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.conftest import REPO

DEPLOY = REPO / "deploy"
CLI = (REPO / "em_dist" / "cli" / "server.py").read_text()


def _em_variables(text: str) -> set[str]:
    return set(re.findall(r"\b(EM_[A-Z0-9_]+)\s*:", text))


def test_compose_file_parses_and_sets_only_known_variables() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    compose = yaml.safe_load(text)
    assert {"postgres", "minio", "make-bucket", "em"} <= set(compose["services"])
    env = compose["services"]["em"]["environment"]
    assert env["EM_BLOBS"].startswith("s3://") and env["EM_DATABASE_URL"].startswith("postgresql://")
    for name in env:
        assert name.startswith("AWS_") or f'"{name}"' in CLI, name


def test_kubernetes_manifest_parses_and_sets_only_known_variables() -> None:
    text = (DEPLOY / "kubernetes.yaml").read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "em-server"), ("StatefulSet", "em-postgres"), ("StatefulSet", "em-minio"),
            ("CronJob", "em-gc"), ("Secret", "em-secrets"), ("ConfigMap", "em-config")} <= kinds
    for name in _em_variables(text):
        assert f'"{name}"' in CLI, name
    assert Path(DEPLOY / "Dockerfile").read_text().count("em_dist") >= 1
