"""Keep secrets out of recorded command lines, environment values and hparams: the one rule,
applied by the SDK before anything is written and by the server before anything is stored.

A training script that takes ``--api_key em_...`` (or ``--password``, ``--hf-token``)
would otherwise store the secret in ``platform.json``, upload it and show it to everyone
the folder is shared with. Before anything is written, the value of every argument and
variable whose name looks secret, and anything shaped like an em API key, becomes
:data:`REDACTED`. Names are split into words, so ``--tokenizer`` and ``max_tokens`` are
kept while ``--api-key``, ``HF_TOKEN`` and ``dbPassword`` are not. Secrets in other forms
go too: the argument after a secret option whatever it looks like (``--passwd -X``), the
password of a URL anywhere (``postgresql://user:pass@host/db``), and a whole dict or list
under a secret-looking key (``{"auth": {...}}``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TypeVar, cast

_Doc = TypeVar("_Doc")

REDACTED = "<redacted>"
SECRET_WORDS = frozenset({"key", "apikey", "token", "secret", "password", "passwd", "pwd", "auth",
                          "authorization", "credential", "credentials"})
"""A name holding one of these words (case-insensitive, split at ``_ - .`` and camelCase) is secret."""
ARGV_KEYS = frozenset({"command", "argv", "cmdline"})
"""A list of strings under one of these keys is a command line: :func:`redact_argv` applies."""
_EM_KEY = re.compile(r"em_[A-Za-z0-9_-]{40,}")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/@:]*:)[^\s/@]+@")
_WORDS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def looks_secret(name: str) -> bool:
    """True when the argument or variable ``name`` looks like it holds a secret."""
    return not SECRET_WORDS.isdisjoint(w.lower() for w in _WORDS.findall(name))


def redact_text(text: str) -> str:
    """``text`` with every em API key and every URL's password in it replaced by :data:`REDACTED`."""
    if "em_" in text:
        text = _EM_KEY.sub(REDACTED, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group(1) + REDACTED + "@", text)
    return text


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with secret option values redacted.

    Handles ``--name value``, ``--name=value``, ``-name value`` and ``NAME=value``
    (e.g. ``env API_KEY=... python train.py``). The argument after a secret option goes
    whatever it looks like: a password may start with ``-``, and a flag mistaken for a
    value costs only a word of the record. Em API keys and URL passwords anywhere go too.
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
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


def redact_record(value: _Doc) -> _Doc:
    """A JSON-like record (hparams, launcher variables) with secrets redacted, recursively.

    A string, dict or list under a secret-looking key becomes :data:`REDACTED` (numbers,
    booleans and null are kept: ``key_dim=64`` is no secret); a list of strings under a
    command-line key (:data:`ARGV_KEYS`) is redacted as one (:func:`redact_argv`); em API keys
    and URL passwords inside any string are redacted too.
    """
    out: object = value
    if isinstance(value, str):
        out = redact_text(value)
    elif isinstance(value, Mapping):
        out = {k: _redact_item(k, v) for k, v in value.items()}
    elif isinstance(value, list):
        out = [redact_record(v) for v in value]
    return cast(_Doc, out)  # a document keeps its own type; only values inside it change


def _redact_item(key: object, value: object) -> object:
    if isinstance(key, str):
        if isinstance(value, (str, Mapping, list)) and looks_secret(key):
            return REDACTED
        if key in ARGV_KEYS and isinstance(value, list) and all(isinstance(a, str) for a in value):
            return redact_argv(value)
    return redact_record(value)
