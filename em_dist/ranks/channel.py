"""The contract between a Run and a distributed engine.

A :class:`Channel` carries messages (small picklable Python objects: record batches,
platform info, hparams, artifact chunks, a final "bye") from every non-zero rank to
rank 0. It runs on em_dist's own background thread(s), never on the training thread,
and never issues a collective on the user's process groups.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

Deliver = Callable[[int, Any], None]
"""Called on rank 0, from the channel's receiving thread, once per message: (source rank, message)."""


class Channel(ABC):
    """Rank-to-rank-0 message transport for one Run."""

    rank: int
    world_size: int

    @abstractmethod
    def start(self, deliver: Deliver | None) -> None:
        """Begin the rendezvous and, on rank 0, receiving; returns at once (work runs in the background).

        ``deliver`` is given on rank 0 only.
        """

    @abstractmethod
    def post(self, message: Any) -> None:
        """Queue a message for rank 0 (non-zero ranks). Never blocks on the network."""

    @abstractmethod
    def close(self, timeout: float) -> set[int]:
        """Flush what is queued and stop within ``timeout`` seconds.

        On rank 0 this waits (bounded) for every peer's final message and returns the
        ranks that never said goodbye (lost). On other ranks it returns an empty set,
        also when rank 0 is gone.
        """

    @property
    def connected(self) -> bool:
        """True once the rendezvous with the peers succeeded."""
        return False
