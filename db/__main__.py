"""``python -m db migrate`` (bring the database to the latest schema) and ``python -m db status``."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import SQLAlchemyError

from . import session as db_session


def _migrate(args) -> int:
    db_session.migrate(args.url, args.revision)
    print(f"database at {db_session.masked_url(args.url)} is at revision {db_session.current_revision(args.url)}")
    return 0


def _status(args) -> int:
    from . import store

    current, head = db_session.current_revision(args.url), db_session.head_revision()
    print(f"database: {db_session.masked_url(args.url)}")
    print(f"schema:   {current or 'empty'} (latest {head})")
    if current is None:
        print("run `python -m db migrate` to create the tables")
        return 1
    with db_session.session_scope(db_session.default_sessions(args.url)) as session:
        counts = store.count_jobs_by_status(session)
        inputs = len(store.list_inputs(session, limit=None))
    print(f"inputs:   {inputs}")
    print("jobs:     " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    return 0 if current == head else 1


def _purge(args) -> int:
    from .sharing import purge_expired

    report = purge_expired(db_session.default_sessions(args.url))
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m db", description="Intrinsic Lab store")
    parser.add_argument("--url", default=None, help="database URL (default: $DATABASE_URL or the SQLite file "
                                                    "in $INTRINSIC_LAB_DATA)")
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="upgrade the schema (creates the database if needed)")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=_migrate)
    commands.add_parser("status", help="schema revision and job counts").set_defaults(handler=_status)
    commands.add_parser("purge", help="remove expired public uploads, their results and the files only they "
                                      "used").set_defaults(handler=_purge)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except SQLAlchemyError as exc:
        print(f"error: database {db_session.masked_url(args.url)}: {exc.__class__.__name__}: {exc}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
