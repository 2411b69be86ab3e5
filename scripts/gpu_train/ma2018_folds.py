"""The ma2018 GPU run: cross-validated folds over the ten MIT objects, unsupervised and semi-supervised, plus the
final model, as parallel short ``python -m engine train ma2018`` runs; then per-object scores of every fold.

``python scripts/gpu_train/ma2018_folds.py --pack PACK --out OUTDIR --budget 360 [--device cuda] [--lanes 3]``

* 5 folds of 2 held-out objects; every fold trains on the other 8 objects' ``light01..10`` (+ the kitchen) and is
  scored on its 2 held-out objects only, so no object is both trained on and scored;
* ``unsup``: no ground truth at all; ``semi``: the reference reflectance of half of the fold's 8 training objects
  (``labelled_fraction=0.5``), never of the held-out ones;
* ``final``: unsupervised on all ten objects + the kitchen (+ ``--synthetic N`` engine.synth scenes under 4 lightings
  if they could be rendered in time; 0 by default: the renderer is CPU-bound, ~2 s a scene there): the shipped model.

OUTDIR receives ``ma2018.safetensors`` + ``ma2018.md`` (final), ``metrics.csv`` (final run), ``folds.json`` (per
object Grosse LMSE / albedo / shading LMSE at the pack's resolution, for the ratio and network albedo outputs),
``folds/<variant>-<k>.safetensors`` (float16, for re-scoring at full resolution with ``python -m engine bench``) and
``runs/`` logs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FOLDS = (("apple", "box"), ("cup1", "dinosaur"), ("frog1", "panther"), ("paper1", "phone"), ("squirrel", "teabag2"))
OBJECTS = [o for fold in FOLDS for o in fold]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pack", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--budget", type=float, default=360)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--work", default=None, help="scratch folder for run folders (default OUT/../ma2018_work)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="extra NAME=VALUE for all runs")
    parser.add_argument("--synthetic", type=int, default=0, help="engine.synth scenes for the final model (0: none)")
    parser.add_argument("--only", default="unsup,semi,final", help="which of unsup, semi, final to run")
    parser.add_argument("--per-run", type=float, default=None, help="training seconds per run (default: from budget)")
    args = parser.parse_args(argv)
    start = time.time()
    pack, out = Path(args.pack).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or out.parent / "ma2018_work").resolve()
    work.mkdir(parents=True, exist_ok=True)
    mit, kitchen = pack / "mit", pack / "kitchen"
    python = sys.executable
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "PYTHONUNBUFFERED": "1"}

    # engine.synth scenes for the final model, rendered in the background while the folds train.
    synth_dir, synth_proc = work / "synth", None
    if args.synthetic > 0:
        synth_proc = subprocess.Popen(
            ["timeout", str(max(5, int(args.budget * 0.45))), python, "-m", "engine.synth", "--n", str(args.synthetic),
             "--size", "128", "--lightings", "4", "--seed", "500000", "--device", args.device, "--out",
             str(synth_dir)], cwd=REPO, env=env, stdout=open(work / "synth.log", "w"), stderr=subprocess.STDOUT)

    jobs = []  # (name, overrides)
    common = [f"extra_data={kitchen}", "val_data=" + str(mit), *args.overrides]
    only = set(args.only.split(","))
    for variant, extra in (("unsup", []), ("semi", ["labelled_fraction=0.5"])):
        if variant not in only:
            continue
        for k, held in enumerate(FOLDS):
            jobs.append((f"{variant}-{k}", [f"exclude={','.join(held)}", f"val_scenes={','.join(held)}", *extra,
                                            *common]))
    final = ("final", [*common, f"val_scenes={','.join(OBJECTS)}"])
    runs_per_lane = -(-(len(jobs) + ("final" in only)) // args.lanes)
    reserve = 70.0  # final scoring and copying
    per_run = args.per_run or max(4.0, (args.budget - reserve) / runs_per_lane - 12.0)  # ~12 s of start-up per run
    print(f"{len(jobs) + 1} runs in {args.lanes} lanes, {per_run:.0f} s of training each", flush=True)

    def command(name, overrides, seconds):
        cmd = [python, "-m", "engine", "train", "ma2018", "--data", str(mit), "--steps", "100000", "--device",
               args.device, "--seed", "0", "--max-seconds", f"{seconds:.0f}", "--out", str(work / name), "--fresh",
               "--name", name, "--log-every", "20", "--set", f"schedule_seconds={seconds:.0f}", "--set",
               "val_every=0"]
        for item in overrides:
            cmd += ["--set", item]
        return cmd

    pending = list(jobs)
    running: list[tuple[str, subprocess.Popen]] = []
    (out / "runs").mkdir(exist_ok=True)
    final_started = "final" not in only
    while pending or running or not final_started:
        running = [(n, p) for n, p in running if p.poll() is None]
        if time.time() - start > args.budget + 20:  # watchdog: never overrun the budget by much
            for n, p in running:
                print(f"{time.time() - start:6.1f} s: stopping {n} (over budget)", flush=True)
                p.terminate()
            pending, running, final_started = [], [], True
            break
        while len(running) < args.lanes and (pending or not final_started):
            if pending:
                name, overrides = pending.pop(0)
            else:  # the final model last, with whatever synthetic scenes were rendered by then
                final_started = True
                name, overrides = final
                if synth_proc is not None:
                    try:
                        synth_proc.wait(timeout=max(1.0, min(30.0, args.budget - (time.time() - start) - per_run - 30)))
                    except subprocess.TimeoutExpired:
                        synth_proc.kill()
                    if synth_proc.wait() == 0 and (synth_dir / "manifest.json").is_file():
                        overrides = [o if not o.startswith("extra_data=") else f"{o},{synth_dir}" for o in overrides]
                        print("final model: with engine.synth scenes", flush=True)
                    else:
                        print("final model: engine.synth scenes not ready, trained without", flush=True)
            log = open(out / "runs" / f"{name}.log", "w")
            proc = subprocess.Popen(command(name, overrides, per_run), cwd=REPO, env=env, stdout=log,
                                    stderr=subprocess.STDOUT)
            running.append((name, proc))
            print(f"{time.time() - start:6.1f} s: started {name}", flush=True)
        time.sleep(0.5)

    # Score every fold on its held-out objects (pack resolution), both albedo outputs.
    import torch

    sys.path.insert(0, str(REPO))
    from engine.methods.ma2018 import model_from_state
    from engine.train.ma2018_recipe import load_val_objects, score_objects
    from engine.weights import load_state_dict

    device = torch.device(args.device if args.device != "cuda" or torch.cuda.is_available() else "cpu")
    objects = {o["name"]: o for o in load_val_objects(mit, OBJECTS, 320)}
    report = {"resolution": "MIT objects at long side 320 (the pack), benchmark input convention",
              "folds": [list(f) for f in FOLDS], "per_run_seconds": per_run, "runs": {}}
    (out / "folds").mkdir(exist_ok=True)
    for name, _ in jobs + ([final] if "final" in only else []):
        weights = work / name / "export" / f"ma2018-{name}.safetensors"
        if not weights.is_file():
            report["runs"][name] = {"error": "no export (see runs/%s.log)" % name}
            continue
        model = model_from_state(load_state_dict(weights)).to(device)
        held = OBJECTS if name == "final" else list(FOLDS[int(name.split("-")[1])])
        scores = {mode: score_objects(model, [objects[o] for o in held], device, 320, mode)
                  for mode in ("ratio", "network")}
        run = json.loads((work / name / "run.json").read_text())
        import csv

        rows = list(csv.DictReader(open(work / name / "metrics.csv")))
        report["runs"][name] = {"held_out": held if name != "final" else "none (trained on all: not a test score)",
                                "scores": scores, "config": run["config"], "device": run["device"],
                                "steps": int(rows[-1]["step"]) if rows else 0,
                                "seconds": float(rows[-1]["seconds"]) if rows else 0.0,
                                "last_losses": rows[-1] if rows else {}}
        if name != "final":
            shutil.copyfile(weights, out / "folds" / f"{name}.safetensors")
    summary = {}
    for variant in ("unsup", "semi"):
        for mode in ("ratio", "network"):
            values = [v for k in range(len(FOLDS)) for v in
                      report["runs"].get(f"{variant}-{k}", {}).get("scores", {}).get(mode, {}).values()]
            if values:
                summary[f"{variant}/{mode}"] = {m: sum(v[m] for v in values) / len(values)
                                                for m in ("grosse_lmse", "albedo_lmse", "shading_lmse")}
                summary[f"{variant}/{mode}"]["objects"] = len(values)
    report["summary"] = summary
    (out / "folds.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps(summary, indent=1), flush=True)

    final_export = work / "final" / "export"
    if (final_export / "ma2018-final.safetensors").is_file():
        shutil.copyfile(final_export / "ma2018-final.safetensors", out / "ma2018.safetensors")
        shutil.copyfile(final_export / "ma2018-final.md", out / "ma2018.md")
        shutil.copyfile(work / "final" / "metrics.csv", out / "metrics.csv")
    print(f"done in {time.time() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
