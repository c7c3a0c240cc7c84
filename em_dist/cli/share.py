"""``em server share list|add|revoke``: who may see a folder you own, over the REST API.

Unlike ``em server user``/``key``, these act as a user (your login or ``-H``/``-k``),
because only a folder's owner may share or unshare it.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import CommandError

if TYPE_CHECKING:
    from ..client.read import Client
    from . import Groups


def register(groups: Groups) -> None:
    share = groups["server"].add_parser(
        "share", help="share a folder you own, list or revoke its shares",
        description="Share a folder you own with another user, list its shares, or revoke one (as the logged-in user).")
    sub = share.add_subparsers(dest="share_command", metavar="SUBCOMMAND")
    sub.required = True
    for name, help_text, func in (("list", "list who a folder is shared with", _list),
                                  ("add", "share a folder with a user", _add),
                                  ("revoke", "revoke a user's share of a folder", _revoke)):
        p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
        p.add_argument("folder", help="the folder: its id or its path (e.g. mnist/ddp)")
        if name != "list":
            p.add_argument("user", help="the other user's name")
        if name == "add":
            p.add_argument("--permission", choices=("view", "edit"), default="view", help="view (default) or edit")
        p.add_argument("-H", "--host", default=None, help="server (default: em login / $EM_HOST)")
        p.add_argument("-k", "--api-key", default=None, help="API key (default: em login / $EM_API_KEY)")
        p.set_defaults(func=func)


def _client_and_folder(args: argparse.Namespace) -> tuple[Client, dict[str, Any]]:
    """The client of the logged-in user and the folder ``args.folder`` (an id or path) that they own."""
    from ..client.read import Client

    client = Client(host=args.host, api_key=args.api_key)
    owned = [f for f in client.folders() if f["permission"] == "owner"]
    for folder in owned:
        if args.folder in (folder["id"], folder["path"]):
            return client, folder
    raise CommandError(f"you own no folder {args.folder!r} (give its id or path; see em.Client().folders())")


def _list(args: argparse.Namespace) -> int:
    client, folder = _client_and_folder(args)
    for share in client.shares(folder["id"]):
        print(f"{share['user']}\t{share['permission']}")
    return 0


def _add(args: argparse.Namespace) -> int:
    client, folder = _client_and_folder(args)
    client.share(folder["id"], args.user, args.permission)
    print(f"shared {folder['path']} with {args.user} ({args.permission})")
    return 0


def _revoke(args: argparse.Namespace) -> int:
    client, folder = _client_and_folder(args)
    client.unshare(folder["id"], args.user)
    print(f"revoked {args.user}'s share of {folder['path']}")
    return 0
