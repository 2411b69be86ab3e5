"""``python -m engine run METHOD INPUT... --out DIR``: run one method, write one PNG per layer and result.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..device import describe_device
from ..inputs import load_input
from ..outputs import encode_result, json_safe, vector_values
from ..registry import find_method, run_method


def _parse_param(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise SystemExit(f"error: --param expects NAME=VALUE, got {text!r}")
    name, value = text.split("=", 1)
    return name.strip(), value.strip()


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("run", help="run one method on image file(s)")
    p.add_argument("method", help="method name (see `python -m engine methods`)")
    p.add_argument("inputs", nargs="+", help="image file(s), or a folder of frames for sequence methods")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE", help="method parameter")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N")
    p.add_argument("--weights", default=None, help="weight set name or file path (learned methods)")
    p.set_defaults(handler=handle, fast_exit=True)  # it closes what it writes: no interpreter teardown needed


def handle(args) -> int:
    spec = find_method(args.method)  # imports this method's module only
    params = dict(_parse_param(t) for t in args.param)
    spec.resolve_params(params)  # a bad parameter is refused before any file is read
    inputs = load_input(args.inputs, spec.input_kind, spec=spec, params=params)

    def progress(fraction: float, message: str) -> None:
        print(f"\r[{fraction * 100:5.1f}%] {message:<60}", end="", file=sys.stderr, flush=True)

    result, ctx, resolved = run_method(spec.name, inputs, params, device=args.device, progress=progress,
                                       weights=args.weights)
    print(file=sys.stderr)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for layer in encode_result(spec, result):
        (out_dir / layer.filename).write_bytes(layer.data)
        files[layer.layer] = {"file": layer.filename, **layer.meta}
    record = {
        "method": spec.name, "parameters": resolved, "device": describe_device(ctx.device),
        "inputs": [str(p) for p in args.inputs], "timings_s": ctx.timings, "files": files,
        "values": vector_values(spec, result), "info": result.info,
    }
    # Strict JSON: NaN/Infinity (never valid JSON) are written as null by json_safe; allow_nan=False proves it.
    (out_dir / "result.json").write_text(json.dumps(json_safe(record), indent=2, allow_nan=False))
    print(f"{spec.name}: wrote {len(files)} layer(s) to {out_dir} in {ctx.timings['total']:.2f} s "
          f"on {record['device']}")
    return 0
