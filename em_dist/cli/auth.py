"""``em login -H HOST -k KEY`` and ``em logout``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from . import Groups


def register(groups: Groups) -> None:
    top = groups["top"]
    p = top.add_parser("login", help="check an API key and save it in ~/.em/config.yaml",
                       description="Check the API key against the server and save host and key (mode 0600).")
    p.add_argument("-H", "--host", default=None, help="server address, e.g. http://127.0.0.1:8000 (default $EM_HOST)")
    p.add_argument("-k", "--api-key", default=None, help="API key (default $EM_API_KEY)")
    p.add_argument("--timeout", type=float, default=None, help="seconds to wait for the server (default 10)")
    p.set_defaults(func=_login)
    p = top.add_parser("logout", help="forget the saved host and key", description="Remove host and key from ~/.em/config.yaml.")
    p.set_defaults(func=_logout)


def _login(args: argparse.Namespace) -> int:
    from ..client.auth import login

    creds = login(host=args.host, api_key=args.api_key, timeout=args.timeout)
    print(f"logged in to {creds.host}")
    return 0


def _logout(args: argparse.Namespace) -> int:
    from ..client.auth import logout

    logout()
    print("logged out")
    return 0
