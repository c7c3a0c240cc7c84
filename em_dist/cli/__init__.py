"""The ``em`` command line: ``em run list|show|upload``, ``em login``, ``em server ...``, ``em console``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    Groups = dict[str, argparse._SubParsersAction[argparse.ArgumentParser]]
    """What each command module's ``register(groups)`` gets: a group name (``top``, ``run``,
    ``artifact``, ``server``) -> the sub-parser collection its commands are added to."""
