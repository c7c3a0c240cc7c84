"""The one secret rule (issue 23, item 8), as the SDK applies it before writing a run folder."""

from __future__ import annotations

import json
from pathlib import Path

import em_dist as em
from em_dist.platform.redact import REDACTED, redact_argv, redact_record


def test_the_value_after_a_secret_option_goes_whatever_it_looks_like() -> None:
    argv = ["train.py", "--passwd", "-Xy7", "--token", "--lr", "0.1", "--tokenizer", "bert"]
    assert redact_argv(argv) == ["train.py", "--passwd", REDACTED, "--token", REDACTED, "0.1", "--tokenizer", "bert"]


def test_url_passwords_go_anywhere() -> None:
    assert redact_argv(["--db", "postgresql://user:pa:ss@host:5432/db"]) == ["--db", f"postgresql://user:{REDACTED}@host:5432/db"]
    assert redact_record({"remote": "https://x:tok@github.com/o/r.git", "plain": "https://github.com/o/r"}) == {
        "remote": f"https://x:{REDACTED}@github.com/o/r.git", "plain": "https://github.com/o/r"}


def test_dicts_and_lists_under_secret_keys_go_and_numbers_stay() -> None:
    doc = {"auth": {"user": "u", "pw": "p"}, "hf_token": ["a", "b"], "key_dim": 64, "use_auth": True,
           "opt": {"api_key": {"v": 1}}, "command": ["x", "--password", "-p"]}
    assert redact_record(doc) == {"auth": REDACTED, "hf_token": REDACTED, "key_dim": 64, "use_auth": True,
                                  "opt": {"api_key": REDACTED}, "command": ["x", "--password", REDACTED]}


def test_the_sdk_writes_hparams_redacted_by_the_same_rule(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path))
    run = em.create_run(name="secrets")
    run.hparams.update({"auth": {"token": "s3cret"}, "db": "mysql://root:s3cret@h/db", "lr": 0.1})
    run.finish()
    on_disk = json.loads((Path(run.path) / "hparams.json").read_text())
    assert "s3cret" not in json.dumps(on_disk) and on_disk["lr"] == 0.1 and on_disk["auth"] == REDACTED
