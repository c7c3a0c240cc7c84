"""``em server start``, ``em server user add``, ``em server key create|revoke``."""

from __future__ import annotations

import argparse
import sys

from ..errors import CommandError


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=None, help="data directory (SQLite db and blobs; default ~/.em/server)")
    p.add_argument("--db", default=None, help="database URL, e.g. postgresql://user@host:5432/em (default SQLite in the data dir)")


def register(groups: dict) -> None:
    server = groups["server"]
    p = server.add_parser("start", help="run the tracking server", description="Run the tracking server (migrates the database first).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; the bound address is printed)")
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    _add_store_args(p)
    p.set_defaults(func=_start)

    user = server.add_parser("user", help="manage users", description="Manage users.")
    user_sub = user.add_subparsers(dest="user_command", metavar="SUBCOMMAND")
    user_sub.required = True
    p = user_sub.add_parser("add", help="add a user and print their first API key", description="Add a user and print their first API key.")
    p.add_argument("name")
    _add_store_args(p)
    p.set_defaults(func=_user_add)

    key = server.add_parser("key", help="manage API keys", description="Create or revoke API keys.")
    key_sub = key.add_subparsers(dest="key_command", metavar="SUBCOMMAND")
    key_sub.required = True
    p = key_sub.add_parser("create", help="print a new API key for a user", description="Print a new API key for an existing user.")
    p.add_argument("name", help="user name")
    _add_store_args(p)
    p.set_defaults(func=_key_create)
    p = key_sub.add_parser("revoke", help="revoke an API key", description="Revoke an API key (it fails with 401 from then on).")
    p.add_argument("key", help="the API key")
    _add_store_args(p)
    p.set_defaults(func=_key_revoke)



def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    try:
        from ..server.config import ServerConfig
    except ImportError as exc:  # pragma: no cover - depends on installed extras
        raise CommandError(f"the server needs its extras: pip install 'em-dist[server]' ({exc})") from None
    return ServerConfig.build(args.data_dir, args.db)


def _start(args: argparse.Namespace) -> int:
    from ..server.serve import serve

    serve(_config(args), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _admin(args: argparse.Namespace, action: str, value: str) -> str:
    from ..server import admin, migrate
    from ..server.db import open_database

    config = _config(args)
    migrate.upgrade(config)
    db = open_database(config)
    try:
        return getattr(admin, action)(db, value)
    except admin.AdminError as exc:
        raise CommandError(str(exc)) from None
    finally:
        db.dispose()


def _user_add(args: argparse.Namespace) -> int:
    print(_admin(args, "add_user", args.name))
    return 0


def _key_create(args: argparse.Namespace) -> int:
    print(_admin(args, "create_key", args.name))
    return 0


def _key_revoke(args: argparse.Namespace) -> int:
    user = _admin(args, "revoke_key", args.key)
    print(f"revoked a key of user {user!r}", file=sys.stderr)
    return 0
