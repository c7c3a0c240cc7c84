"""Keep secrets out of recorded command lines, environment values and hparams.

A training script that takes ``--api_key em_...`` (or ``--password``, ``--hf-token``)
would otherwise store the secret in ``platform.json``, upload it and show it to everyone
the folder is shared with. Before anything is written, the value of every argument and
variable whose name looks secret, and anything shaped like an em API key, becomes
:data:`REDACTED`. Names are split into words, so ``--tokenizer`` and ``max_tokens`` are
kept while ``--api-key``, ``HF_TOKEN`` and ``dbPassword`` are not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "<redacted>"
SECRET_WORDS = frozenset({"key", "apikey", "token", "secret", "password", "passwd", "pwd", "auth",
                          "authorization", "credential", "credentials"})
"""A name holding one of these words (case-insensitive, split at ``_ - .`` and camelCase) is secret."""
_EM_KEY = re.compile(r"em_[A-Za-z0-9_-]{40,}")
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def looks_secret(name: str) -> bool:
    """True when the argument or variable ``name`` looks like it holds a secret."""
    return not SECRET_WORDS.isdisjoint(w.lower() for w in _WORDS.findall(name))


def redact_text(text: str) -> str:
    """``text`` with every em API key in it replaced by :data:`REDACTED`."""
    return _EM_KEY.sub(REDACTED, text) if "em_" in text else text


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with secret option values redacted.

    Handles ``--name value``, ``--name=value``, ``-name value`` and ``NAME=value``
    (e.g. ``env API_KEY=... python train.py``); an em API key anywhere is redacted too.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next and not arg.startswith("-"):
            out.append(REDACTED)
            hide_next = False
            continue
        hide_next = False
        name, eq, _value = arg.partition("=")
        if eq and looks_secret(name.lstrip("-")):
            out.append(f"{name}={REDACTED}")
        elif arg.startswith("-") and looks_secret(arg.lstrip("-")):
            out.append(arg)
            hide_next = True
        else:
            out.append(redact_text(arg))
    return out


def redact_record(value: object) -> object:
    """A JSON-like record (hparams, launcher variables) with secrets redacted, recursively.

    A string under a secret-looking key becomes :data:`REDACTED` (numbers are kept:
    ``key_dim=64`` is no secret); an em API key inside any string is redacted too.
    """
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return redact_mapping(value)
    if isinstance(value, list):
        return [redact_record(v) for v in value]
    return value


def redact_mapping(doc: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`redact_record` of a mapping (hparams): a redacted copy, typed as the dict it is."""
    return {k: REDACTED if isinstance(v, str) and isinstance(k, str) and looks_secret(k) else redact_record(v)
            for k, v in doc.items()}
