"""Platform probe: what machine, software stack, launcher and git state a run ran in."""

from __future__ import annotations

from em_dist.platform.git import collect_git
from em_dist.platform.probe import collect_platform

__all__ = ["collect_platform", "collect_git"]
