"""``python -m db migrate`` (bring the database to the latest schema), ``python -m db status``, ``python -m db purge``
and ``python -m db artifacts copy|verify`` (move a local artifact folder into a bucket; re-hash a store)."""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.exc import SQLAlchemyError

from . import session as db_session
from .artifacts import ArtifactError


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


def _report(key: str, problem: str) -> None:
    print(f"  {key}: {problem}", file=sys.stderr)


def _artifacts_copy(args) -> int:
    from .artifacts import ArtifactStore, copy_store, open_artifacts

    source = ArtifactStore(args.source) if args.source else open_artifacts()
    if not isinstance(source, ArtifactStore):
        print(f"error: --from must be a local folder (INTRINSIC_LAB_ARTIFACTS is {source.url})", file=sys.stderr)
        return 2
    if not source.root.is_dir():
        print(f"error: no artifact folder at {source.root}", file=sys.stderr)
        return 2
    target = open_artifacts(args.to)
    target.check()  # a missing bucket or refused credentials fail here, with the reason
    print(f"copying {source.root} → {target.url}")
    counts = copy_store(source, target, progress=_report)
    print(f"{counts['copied']} copied, {counts['skipped']} already there, {counts['verified']} verified in "
          f"{target.url}; {counts['corrupt_source']} corrupt in the source (not copied), "
          f"{counts['corrupt_target']} corrupt in the target")
    if counts["corrupt_target"]:
        print("delete the corrupt objects listed above from the target and run the copy again", file=sys.stderr)
    return 1 if counts["corrupt_source"] or counts["corrupt_target"] else 0


def _artifacts_verify(args) -> int:
    from .artifacts import open_artifacts, verify_store

    store = open_artifacts(args.store)
    store.check()
    counts = verify_store(store, progress=_report)
    print(f"{store.url}: {counts['ok']} artifact(s) match their key, {counts['corrupt']} corrupt")
    return 1 if counts["corrupt"] else 0


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
    artifacts = commands.add_parser("artifacts", help="the artifact store (INTRINSIC_LAB_ARTIFACTS: a folder or "
                                                      "s3://bucket/prefix)").add_subparsers(dest="action", required=True)
    copy = artifacts.add_parser("copy", help="copy a local artifact folder into a store (a bucket) and verify every "
                                             "hash there; objects already there are skipped (and verified)")
    copy.add_argument("--to", required=True, help="the target, e.g. s3://bucket/prefix (credentials: the AWS_* "
                                                  "variables)")
    copy.add_argument("--from", dest="source", default=None,
                      help="the local folder (default: INTRINSIC_LAB_ARTIFACTS, else $INTRINSIC_LAB_DATA/artifacts)")
    copy.set_defaults(handler=_artifacts_copy)
    verify = artifacts.add_parser("verify", help="re-hash every artifact of a store; exit status 1 if any is corrupt")
    verify.add_argument("store", nargs="?", default=None, help="a folder or s3://bucket/prefix (default: "
                                                               "INTRINSIC_LAB_ARTIFACTS)")
    verify.set_defaults(handler=_artifacts_verify)
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except ArtifactError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SQLAlchemyError as exc:
        print(f"error: database {db_session.masked_url(args.url)}: {exc.__class__.__name__}: {exc}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
