"""Where em_dist's gloo links listen: on the network the job's own traffic uses.

gloo's default device binds the address this host's *name* resolves to. On many machines
that is a loopback address (Debian and Ubuntu map the host's own name to ``127.0.1.1``),
which a rank on another host can't reach: its records would never arrive. So each end of a
link chooses, in this order (:func:`choose`):

1. ``GLOO_SOCKET_IFNAME`` (then ``TP_SOCKET_IFNAME``): the interface the job named for its
   own gloo traffic (the first one, when it lists several);
2. the local address of the route toward the other end: a rank routes toward the job's store
   (``MASTER_ADDR``, or the address of the store it holds), which is on rank 0's host; rank 0
   or a node leader, serving, routes toward the address the peer announced in its hello. A
   route lookup sends nothing (a UDP ``connect`` only picks the interface);
3. the host name, as gloo does by default, when neither tells.

A loopback address comes out of (2) only when the other end is on this very host.
The choice is a :class:`Bind`, recorded in the rank's platform entry (``link``).
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

IFNAME_VARS = ("GLOO_SOCKET_IFNAME", "TP_SOCKET_IFNAME")
"""The job's own choice of interface, in order of precedence."""


@dataclass(frozen=True)
class Bind:
    """Where one gloo device listens, and which rule chose it (for the run's record)."""

    address: str
    """The address peers connect to ('' when it could not be read)."""
    interface: str | None = None
    """The interface named by the job, when that rule chose."""
    by: str = "host name"
    """``GLOO_SOCKET_IFNAME``, ``TP_SOCKET_IFNAME``, ``route to <address>`` or ``host name``."""

    def device(self) -> Any:
        """A new gloo device listening here."""
        import torch.distributed as dist

        if self.interface:
            return dist.ProcessGroupGloo.create_device(interface=self.interface)
        if self.address and self.by != "host name":
            return dist.ProcessGroupGloo.create_device(hostname=self.address)
        return dist.ProcessGroupGloo.create_default_device()

    def record(self) -> dict[str, Any]:
        """The platform entry's ``link`` form."""
        out: dict[str, Any] = {"address": self.address, "by": self.by}
        if self.interface:
            out["interface"] = self.interface
        return out


def choose(toward: str | None, env: Mapping[str, str] | None = None, label: str | None = None) -> Bind:
    """Where to listen for a link whose other end is at (or reached through) ``toward``; ``label``
    names that end in the record (default: ``toward`` itself)."""
    env = os.environ if env is None else env
    for var in IFNAME_VARS:
        name = env.get(var, "").split(",")[0].strip()
        if name:
            return Bind(interface_address(name) or "", name, var)
    if toward:
        local = route_from(toward)
        if local:
            return Bind(local, None, f"route to {label or toward}")
    return Bind(_resolved_host_name(), None, "host name")


def store_host(store: Any, env: Mapping[str, str] | None = None) -> str | None:
    """The host of the job's store: ``MASTER_ADDR``, else the host of the TCPStore under ``store``."""
    env = os.environ if env is None else env
    if env.get("MASTER_ADDR"):
        return env["MASTER_ADDR"]
    for _ in range(8):  # PrefixStores wrap the TCPStore; a few levels at most
        host = getattr(store, "host", None)
        if isinstance(host, str) and host:
            return host
        store = getattr(store, "underlying_store", None)
        if store is None:
            break
    return None


def route_from(host: str) -> str | None:
    """This host's address on the route toward ``host`` (a name or an address), or None."""
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host, 9, type=socket.SOCK_DGRAM)[0]
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect(sockaddr)  # a UDP connect picks the route and sends nothing
            return str(s.getsockname()[0])
    except (OSError, IndexError, UnicodeError):
        return None


_SIOCGIFADDR = 0x8915


def interface_address(name: str) -> str | None:
    """The IPv4 address of interface ``name`` (Linux), or None: only for the run's record."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            packed = fcntl.ioctl(s.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        return socket.inet_ntoa(packed[20:24])
    except (OSError, ValueError):
        return None


def _resolved_host_name() -> str:
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return ""
