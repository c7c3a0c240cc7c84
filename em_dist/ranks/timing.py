"""Every wait and interval of the rank layer, in one object built once per run.

The waits are chosen so that training is never held up for long: each is a bound on
em_dist's own background work or on ``finish()``, never on the training loop.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

DEFAULT_DIST_TIMEOUT = 60.0


@dataclass(frozen=True)
class RankTimings:
    """The rank layer's timings, in seconds unless said otherwise."""

    dist_timeout: float = DEFAULT_DIST_TIMEOUT
    """``create_run(dist_timeout=)``: the most ``finish()`` waits for the other ranks' last records."""
    engine_wait: float = 600.0
    """How long a rank's background thread waits for the job's store or engine to appear (a
    ``create_run`` placed before ``init_process_group``). Never the training thread."""
    root_join_grace: float = 3.0
    """At ``finish()``, how long rank 0 waits for peers that never joined (rank-0-only scripts)."""
    peer_join_grace: float = 10.0
    """At ``finish()``, how long a peer waits for a rank 0 that never started serving."""
    accept_wait: float = 10.0
    """How long a peer that announced itself waits for rank 0 to accept it before building its link."""
    signal_close_cap: float = 5.0
    """When a signal ends the run, every wait is capped at this: the launcher kills for good soon
    after (torchrun: 30 s after SIGTERM)."""
    release_wait: float = 2.0
    """How long rank 0 waits for its per-peer links to tear down after their goodbye."""
    send_interval: float = 0.2
    """A peer hands its records on at least this often (they reach rank 0 well within 2 s)."""
    heartbeat: float = 1.0
    """A joined peer with nothing to send still sends an empty frame this often, so that rank 0 can
    tell a quiet link from a dead one (gloo offers no way to see a closed pair without waiting on it)."""
    silence: float = 10.0
    """``EM_DIST_PEER_TIMEOUT``: a gloo link rank 0 heard nothing from (not even a heartbeat) for this
    long is tested once, which closes it: the peer died or froze. A peer that is alive rebuilds its
    link (and re-sends what rank 0 lacks); one that never comes back is recorded as lost."""
    pair_wait: float = 30.0
    """How long rank 0 waits for an accepted peer to build its side of the gloo pair."""
    horovod_interval: float = 0.1
    """Rank 0's pace of Horovod rounds while idle."""
    poll: float = 0.05
    """Polling step of waits on a store key or an engine handle."""
    link_timeout: timedelta = timedelta(days=1)
    """gloo's own timeout for a pair. Long on purpose: em_dist's waits are bounded in Python, and
    a peer may stay quiet for hours (no logging during a long evaluation)."""

    @classmethod
    def from_env(cls, dist_timeout: float | None = None, env: Mapping[str, str] | None = None) -> RankTimings:
        """Timings for one run: ``dist_timeout`` as given (else ``EM_DIST_TIMEOUT``), the engine
        wait from ``EM_DIST_ENGINE_WAIT``; never shorter than ``dist_timeout``."""
        env = os.environ if env is None else env
        timings = cls()
        dist_timeout = positive_seconds(dist_timeout, "dist_timeout", env.get("EM_DIST_TIMEOUT"), timings.dist_timeout)
        engine_wait = positive_seconds(None, "EM_DIST_ENGINE_WAIT", env.get("EM_DIST_ENGINE_WAIT"), timings.engine_wait)
        silence = positive_seconds(None, "EM_DIST_PEER_TIMEOUT", env.get("EM_DIST_PEER_TIMEOUT"), timings.silence)
        return replace(timings, dist_timeout=dist_timeout, engine_wait=max(engine_wait, dist_timeout), silence=silence)

    def capped(self, timeout: float, signalled: bool) -> float:
        """``timeout``, or at most :attr:`signal_close_cap` when a signal is ending the process."""
        return min(timeout, self.signal_close_cap) if signalled else timeout


def positive_seconds(value: Any, what: str, env: str | None, default: float) -> float:
    """The one rule for a duration setting: ``value`` if given, else the environment's ``env`` text,
    else ``default``; a positive number of seconds, or a ``ValueError`` saying which setting."""
    if value is None and env:
        try:
            value = float(env)
        except ValueError:
            raise ValueError(f"the environment gives {what}={env!r}; it must be a number of seconds") from None
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)
