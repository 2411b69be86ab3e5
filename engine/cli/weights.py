"""``python -m engine weights list | verify [METHOD [FILE]] | import METHOD FILE``.

``list`` and ``verify`` read files only (never the network); ``import`` converts an official file you already have
(checked against the published checksum where one is known) into the cache with a provenance record. None of the
official releases has a stable direct download address, so fetching them is left to the user (``list`` shows where).
"""

from __future__ import annotations

import json
import sys


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("weights", help="list, verify and import weight sets")
    sub = p.add_subparsers(dest="weights_command", required=True)
    ls = sub.add_parser("list", help="every declared weight set and where it would resolve")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=handle_list)
    verify = sub.add_parser("verify", help="check the sha256 of every weight file present (exit 1 if one is corrupt)")
    verify.add_argument("method", nargs="?", help="only this method")
    verify.add_argument("file", nargs="?", help="verify this file against the method's declared checksums")
    verify.set_defaults(handler=handle_verify)
    imp = sub.add_parser("import", help="convert an official weights file into the cache")
    imp.add_argument("method")
    imp.add_argument("file")
    imp.add_argument("--name", default=None, help="which weight set the file is (when the method has several)")
    imp.set_defaults(handler=handle_import)


def handle_list(args) -> int:
    from ..weights import all_weight_sets, ensure_declarations_loaded, verify

    ensure_declarations_loaded()
    rows = []
    for ws in all_weight_sets():
        report = verify(ws)
        rows.append({"method": ws.method, "name": ws.name, "official": ws.official, "format": ws.format,
                     "status": report.status, "path": report.path, "licence": ws.licence,
                     "source": ws.source_url, "model_card": ws.model_card, "detail": report.detail})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        kind = "official" if row["official"] else "project"
        print(f"{row['method']}/{row['name']:<14} {kind:<8} {row['status']:<13} {row['path'] or row['detail']}")
    return 0


def handle_verify(args) -> int:
    from ..weights import (all_weight_sets, ensure_declarations_loaded, resolve_weights, verify,
                           weight_sets_for)

    ensure_declarations_loaded()
    if args.file:
        resolved = resolve_weights(args.method, args.file)
        known = resolved.weight_set is not None
        print(f"{args.file}: sha256 {resolved.sha256}"
              + (f" matches {resolved.weight_set.key}" if known else " (no declared checksum for this file name)"))
        return 0 if known else 1
    sets = weight_sets_for(args.method) if args.method else all_weight_sets()
    bad = 0
    for ws in sets:
        report = verify(ws)
        if report.status == "corrupt":
            bad += 1
        print(f"{report.key:<28} {report.status:<13} {report.detail}")
    if bad:
        print(f"{bad} weight file(s) failed verification", file=sys.stderr)
    return 1 if bad else 0


def handle_import(args) -> int:
    from ..weights import ensure_declarations_loaded, import_official

    ensure_declarations_loaded()
    path, provenance = import_official(args.method, args.file, args.name)
    print(f"imported {args.file} → {path} (sha256 {provenance['sha256'][:16]}…, {provenance['tensors']} tensors)")
    return 0
