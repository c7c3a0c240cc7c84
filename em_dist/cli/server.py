"""``em server start``, ``em server gc``, ``em server user add``, ``em server key create|revoke``.

Each store flag falls back to an environment variable (``EM_DATA_DIR``, ``EM_DATABASE_URL``,
``EM_BLOBS``, ``EM_S3_ENDPOINT_URL``), so a container sets them once for every command.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from ..errors import CommandError

if TYPE_CHECKING:
    from ..server.config import ServerConfig
    from . import Groups


def _add_store_args(p: argparse.ArgumentParser) -> None:
    env = os.environ.get
    p.add_argument("--data-dir", default=env("EM_DATA_DIR"),
                   help="data directory (SQLite db and blobs; default ~/.em/server; env EM_DATA_DIR)")
    p.add_argument("--db", default=env("EM_DATABASE_URL"),
                   help="database URL, e.g. postgresql://user@host:5432/em (default SQLite in the data dir; env EM_DATABASE_URL)")
    p.add_argument("--blobs", default=env("EM_BLOBS"),
                   help="blob store: a directory or s3://bucket/prefix (default DATA_DIR/blobs; env EM_BLOBS); S3 "
                        "credentials and region from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION")
    p.add_argument("--s3-endpoint-url", default=env("EM_S3_ENDPOINT_URL"),
                   help="endpoint of a non-AWS S3 store, e.g. http://minio:9000 (env EM_S3_ENDPOINT_URL or AWS_ENDPOINT_URL)")


def register(groups: Groups) -> None:
    server = groups["server"]
    p = server.add_parser("start", help="run the tracking server", description="Run the tracking server (migrates the database first).")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (0 picks a free one; the bound address is printed)")
    p.add_argument("--root-path", default=os.environ.get("EM_ROOT_PATH"),
                   help="serve the API and console under this path prefix, e.g. /t9k/experiment/server "
                        "(clients then use http://HOST:PORT/t9k/experiment/server; env EM_ROOT_PATH)")
    p.add_argument("--log-level", default="warning", help="uvicorn log level (default warning)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("EM_WORKERS", "1")),
                   help="server processes sharing the port (default 1; env EM_WORKERS); more than 1 needs PostgreSQL")
    _add_store_args(p)
    p.set_defaults(func=_start)

    p = server.add_parser("gc", help="remove blobs no artifact references",
                          description="Remove blobs that no artifact references and that nobody uploaded within the "
                                      "grace period (younger ones may be uploads in flight), and abandoned uploads. "
                                      "Safe while servers run.")
    p.add_argument("--grace-s", type=float, default=None,
                   help="keep unreferenced blobs uploaded less than this many seconds ago (default 86400)")
    p.add_argument("--dry-run", action="store_true", help="only count what would be removed")
    _add_store_args(p)
    p.set_defaults(func=_gc)

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



def _config(args: argparse.Namespace) -> ServerConfig:
    try:
        from ..server.config import ServerConfig
    except ImportError as exc:  # pragma: no cover - depends on installed extras
        raise CommandError(f"the server needs its extras: pip install 'em-dist[server]' ({exc})") from None
    try:
        return ServerConfig.build(args.data_dir, args.db, blobs=args.blobs, s3_endpoint_url=args.s3_endpoint_url,
                                  root_path=getattr(args, "root_path", None))
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _start(args: argparse.Namespace) -> int:
    from ..server.serve import WorkersError, check_workers, serve

    from ..server.blobs import BlobStoreUnavailable, open_blob_store

    config = _config(args)
    try:
        check_workers(config, args.workers)
        open_blob_store(config.blob_location, s3_endpoint_url=config.s3_endpoint_url)  # fail here, not in a worker
    except (WorkersError, BlobStoreUnavailable) as exc:
        raise CommandError(str(exc)) from None
    serve(config, host=args.host, port=args.port, log_level=args.log_level, workers=args.workers)
    return 0


def _gc(args: argparse.Namespace) -> int:
    from ..server import blob_gc, migrate
    from ..server.blobs import BlobStoreUnavailable, open_blob_store
    from ..server.db import open_database

    config = _config(args)
    try:
        store = open_blob_store(config.blob_location, s3_endpoint_url=config.s3_endpoint_url)
    except BlobStoreUnavailable as exc:
        raise CommandError(str(exc)) from None
    migrate.upgrade(config)
    db = open_database(config)
    try:
        grace = blob_gc.GRACE_S if args.grace_s is None else args.grace_s
        report = blob_gc.collect(db, store, grace_s=grace, dry_run=args.dry_run)
    finally:
        db.dispose()
    print(f"{'would remove' if args.dry_run else 'removed'} {report}")
    return 0


def _admin(args: argparse.Namespace, action: str, value: str) -> str:
    from ..server import admin, migrate
    from ..server.db import open_database

    config = _config(args)
    migrate.upgrade(config)
    db = open_database(config)
    try:
        actions = {"add_user": admin.add_user, "create_key": admin.create_key, "revoke_key": admin.revoke_key}
        return actions[action](db, value)
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
