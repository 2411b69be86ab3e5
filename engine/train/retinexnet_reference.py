"""RetinexNet's reference training and evaluation command: the authors' schedule, epoch by epoch, which produced
the shipped weights (``assets/model_cards/retinexnet.md`` gives the exact command), and ``--evaluate``, which prints the
validation scores the card quotes. Losses, data and the shared-loop recipe live in :mod:`engine.train.retinexnet_recipe`;
new training runs should use the shared loop (``python -m engine train retinexnet --data DIR``)::

    nice -n 10 python -m engine.train.retinexnet_reference --data ../shared/data/lol/our485 --epochs 100 \
        --out runs/retinexnet
    python -m engine.train.retinexnet_reference --data ../shared/data/lol/our485 \
        --evaluate assets/weights/retinexnet.safetensors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..methods.retinexnet import RetinexNet
from .recipe import Phase
from .retinexnet_recipe import (PROTOCOL, RECIPE, FullPairs, PatchPairs, decom_loss, evaluate, exposure_statistics,
                                lol_pairs, relight_loss, split_pairs)

def train_phase(model: RetinexNet, phase: str, train: PatchPairs, *, epochs: int, lr: float, lr_drop_epoch: int,
                batch_size: int, device: torch.device, seed: int, log,
                precision: torch.dtype = torch.float32, steps_per_epoch: int | None = None) -> dict[str, Any]:
    """Train one phase the authors' way; returns the steps, wall time and the last epoch's mean loss.

    ``precision`` bfloat16 runs the networks under autocast (weights, optimiser and losses stay float32); on a CPU
    with AVX512-BF16 a step is markedly faster. ``steps_per_epoch`` (default: one pass, ``len(train) //
    batch_size``, as the authors' loop) lets an epoch run as many steps as the paper's larger training set had; the
    patches keep cycling through freshly shuffled passes, as the authors' loop does when it runs out of images.
    """
    from ..device import autocast, precision_name

    params = RECIPE.trainable_parameters(model, Phase(phase))
    optimiser = torch.optim.Adam(params, lr=lr)
    fn = decom_loss if phase == "decom" else relight_loss
    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(train, batch_size=batch_size, shuffle=True, drop_last=True,
                                         generator=generator)
    model.train()
    per_epoch = steps_per_epoch or len(loader)

    def batches():
        while True:
            yield from loader

    stream = batches()
    start, step, history = time.time(), 0, []
    for epoch in range(epochs):
        for group in optimiser.param_groups:
            group["lr"] = lr if epoch < lr_drop_epoch else lr * 0.1
        losses = []
        for _ in range(per_epoch):
            batch = next(stream)
            with autocast(device, precision):
                loss, _ = fn(model, batch["low"].to(device), batch["high"].to(device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            step += 1
        history.append(float(np.mean(losses)))
        log(f"{phase} epoch {epoch + 1}/{epochs} step {step} loss {history[-1]:.5f} ({time.time() - start:.0f} s)")
    return {"steps": step, "wall_s": time.time() - start, "loss_first_epoch": history[0],
            "loss_last_epoch": history[-1], "epochs": epochs, "steps_per_epoch": per_epoch,
            "precision": precision_name(precision)}


def main(argv: list[str] | None = None) -> int:
    from ..device import PRECISIONS, native_bfloat16, resolve_device, resolve_precision
    from ..weights import save_state_dict

    parser = argparse.ArgumentParser(prog="python -m engine.train.retinexnet_reference", description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="LOL-layout folder with low/ and high/")
    parser.add_argument("--out", default=None, help="output folder (weights, report.json, log); needed to train")
    parser.add_argument("--epochs", type=int, default=100, help="epochs per phase (paper: 100)")
    parser.add_argument("--relight-epochs", type=int, default=None, help="epochs of the relight phase (default: --epochs)")
    parser.add_argument("--lr-drop-epoch", type=int, default=20, help="lr ×0.1 from this epoch (paper: 20 of 100; "
                        "scaled in proportion when a phase has fewer epochs)")
    parser.add_argument("--phases", default="decom,relight")
    parser.add_argument("--init", default=None, help="start from this safetensors (e.g. to train relight only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initialisation, patches and shuffling")
    parser.add_argument("--split-seed", type=int, default=None,
                        help="seed of the validation split (default: --seed): vary training, keep the split")
    parser.add_argument("--val-count", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps-per-epoch", type=int, default=None,
                        help="steps per epoch (default: one pass over the training pairs, as the authors' loop; the "
                        "paper's 485 LOL pairs made 485 // 16 = 30)")
    parser.add_argument("--patch-size", type=int, default=48)
    parser.add_argument("--exposure-jitter", type=float, default=1.0, metavar="F",
                        help="re-expose each low-light patch by a gain drawn log-uniformly from [1/F, F] (1: off, "
                        "the authors' loop); a stand-in for the paper's synthetic exposure-adjusted pairs")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="compute precision for training or --evaluate (auto: bfloat16 autocast on a CPU with "
                        "native bfloat16, else float32)")
    parser.add_argument("--evaluate", default=None, metavar="WEIGHTS",
                        help="do not train: report validation PSNR/SSIM of this safetensors file")
    parser.add_argument("--denoise", type=float, default=0.0, metavar="STRENGTH",
                        help="with --evaluate: denoise the reflectance as the runner's option does (0: off)")
    parser.add_argument("--decom", default=None, metavar="WEIGHTS",
                        help="with --evaluate: take DecomNet from this safetensors file or official TF checkpoint")
    args = parser.parse_args(argv)
    if args.evaluate:
        return _evaluate_only(args)
    if not args.out:
        parser.error("--out is required to train")

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = (out / "train.log").open("a")

    def log(message: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {message}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    train_pairs, val_pairs = split_pairs(lol_pairs(args.data), args.val_count, _split_seed(args))
    log(f"{len(train_pairs)} training pairs, {len(val_pairs)} validation pairs: {[p[0].name for p in val_pairs]}")
    model = RetinexNet().to(device)
    if args.init:
        from ..weights import load_state_dict

        model.load_state_dict(load_state_dict(args.init))
    train = PatchPairs(train_pairs, args.patch_size, args.seed, args.exposure_jitter)
    report: dict[str, Any] = {"command": "python -m engine.train.retinexnet_reference " + " ".join(argv or __import__("sys").argv[1:]),
                              "train_pairs": len(train_pairs), "val_pairs": [p[0].name for p in val_pairs],
                              "device": str(device), "threads": torch.get_num_threads(), "phases": {}}
    for phase in args.phases.split(","):
        epochs = args.relight_epochs if phase == "relight" and args.relight_epochs else args.epochs
        drop = round(args.lr_drop_epoch * epochs / args.epochs)
        report["phases"][phase] = train_phase(
            model, phase, train, epochs=epochs, lr=1e-3, lr_drop_epoch=drop,
            batch_size=args.batch_size, device=device, seed=args.seed, log=log, precision=precision,
            steps_per_epoch=args.steps_per_epoch)
        digest = save_state_dict(model.state_dict(), out / f"retinexnet_after_{phase}.safetensors")
        log(f"saved after {phase}: sha256 {digest}")
    val = FullPairs(val_pairs)
    report["validation"] = result = evaluate(model, val, device)
    log(f"validation PSNR {result['psnr']:.3f} dB, SSIM {result['ssim']:.4f} (float32)")
    if native_bfloat16(device):
        report["validation_bfloat16"] = low = evaluate(model, val, device, torch.bfloat16)
        log(f"validation PSNR {low['psnr']:.3f} dB, SSIM {low['ssim']:.4f} (bfloat16, the CPU default here)")
    report["sha256"] = save_state_dict(model.state_dict(), out / "retinexnet.safetensors",
                                       metadata={"method": "retinexnet", "weight_set": "project"})
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return 0


def _split_seed(args) -> int:
    return args.seed if args.split_seed is None else args.split_seed


def _evaluate_only(args) -> int:
    from ..device import resolve_device, resolve_precision
    from ..methods.retinexnet import convert_official, split_state
    from ..weights import load_state_dict

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = RetinexNet()
    model.load_state_dict(load_state_dict(args.evaluate))
    if args.decom:
        source = Path(args.decom)
        state = load_state_dict(source) if source.suffix == ".safetensors" else convert_official(source)
        model.decom.load_state_dict(split_state(state)[0])
    pairs = lol_pairs(args.data)
    _, val_pairs = split_pairs(pairs, args.val_count, _split_seed(args))
    precision = resolve_precision(args.precision, device)
    result = evaluate(model.to(device), FullPairs(val_pairs), device, precision, args.denoise)
    for row in result["per_image"]:
        print(f"{row['name']:>10}  PSNR {row['psnr']:6.2f} dB  SSIM {row['ssim']:.4f}  mean level "
              f"{row['output_mean']:.3f} (input {row['input_mean']:.3f}, reference {row['reference_mean']:.3f}; "
              f"at the best global gain ×{row['best_gain']:.2f}: {row['psnr_best_gain']:6.2f} dB)")
    denoised = f", reflectance denoised at strength {args.denoise:g}" if args.denoise > 0 else ""
    print(f"validation ({len(val_pairs)} pairs, {PROTOCOL.describe()}, {result['precision']}{denoised}): "
          f"PSNR {result['psnr']:.3f} dB, SSIM {result['ssim']:.4f}; "
          f"diagnostic, PSNR at each image's best global gain: {result['psnr_best_gain']:.3f} dB")
    corr = result["level_correlation"]
    print(f"diagnostic, correlation over images of the output's mean level with the input's: "
          f"{corr['output_vs_input']:.2f}, with the reference's: {corr['output_vs_reference']:.2f}")
    data = exposure_statistics(pairs)
    print(f"data, over all {data['pairs']} pairs of {args.data}: correlation of the low-light mean level with the "
          f"normal-light's {data['correlation']:.2f}; normal / low level ratio, 10th/50th/90th percentile "
          f"{data['ratio_p10']:.1f} / {data['ratio_p50']:.1f} / {data['ratio_p90']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
