"""Paired restoration datasets: an input photo and its clean target, both sRGB-encoded.

* LOL (Wei et al. 2018): ``our485/{low,high}/`` (train) and ``eval15/{low,high}/`` (test), same file names.
* Raindrop (Qian et al. 2018): ``data/N_rain.png`` with ``gt/N_clean.png`` (the test_a layout); a folder holding
  ``train/``, ``test_a/`` and ``test_b/`` of that layout gives the splits ``train``, ``test``, ``test_b``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..registry import InputKind
from .base import DatasetAdapter, DatasetError, Sample, as_rgb, image_files, image_header, read_float, write_png


class _PairedDataset(DatasetAdapter):
    input_kind = InputKind.IMAGE
    metrics = ("psnr_rgb", "ssim_rgb", "psnr_y", "ssim_y")

    #: (input file, target file) of the example item, relative to the folder
    example_files: tuple[str, str] = ("", "")

    def write_example(self, folder: Path) -> Path:
        from ..examples import example_pair

        low, high = example_pair(24)
        write_png(folder / self.example_files[0], low)
        write_png(folder / self.example_files[1], high)
        return folder

    def split_folders(self, folder: Path) -> dict[str, Path]:
        """split → folder holding one (input dir, target dir) pair, for the splits present on disk."""
        raise NotImplementedError

    def pairs(self, split_folder: Path) -> tuple[dict[str, Path], dict[str, Path]]:
        """(key → input file, key → target file) for one split folder."""
        raise NotImplementedError

    def problems(self, folder: Path) -> list[str]:
        found = []
        present = self.split_folders(folder)
        if not present:
            return [f"none of the expected sub-folders is here ({self.layout})"]
        for split, sub in present.items():
            inputs, targets = self.pairs(sub)
            if not inputs:
                found.append(f"{sub.relative_to(folder) if sub != folder else '.'}: no input images")
            for key in sorted(set(inputs) - set(targets)):
                found.append(f"{inputs[key].relative_to(folder)}: no matching target image")
            for key in sorted(set(targets) - set(inputs)):
                found.append(f"{targets[key].relative_to(folder)}: no matching input image")
            for key in sorted(set(inputs) & set(targets)):
                a, b = image_header(inputs[key]), image_header(targets[key])
                if a is None or b is None:
                    bad = inputs[key] if a is None else targets[key]
                    found.append(f"{bad.relative_to(folder)}: not a readable image")
                elif a != b:
                    found.append(f"{inputs[key].relative_to(folder)}: {a[1]}×{a[0]} but its target is {b[1]}×{b[0]}")
        return found

    def item_ids(self, folder: Path, split: str) -> list[str]:
        present = self.split_folders(folder)
        chosen = present.items() if split == "all" else [(split, present[split])] if split in present else []
        ids = []
        for name, sub in chosen:
            inputs, targets = self.pairs(sub)
            ids += [f"{name}/{key}" for key in inputs if key in targets]
        return ids

    def load(self, folder: Path, item_id: str) -> Sample:
        split, key = item_id.split("/", 1)
        sub = self.split_folders(Path(folder)).get(split)
        if sub is None:
            raise DatasetError(f"{folder}: no {split!r} split for item {item_id}")
        inputs, targets = self.pairs(sub)
        if key not in inputs or key not in targets:
            raise DatasetError(f"{folder}: no pair {key!r} in split {split!r}")
        image, target = as_rgb(read_float(inputs[key])), as_rgb(read_float(targets[key]))
        return Sample(item_id, (image,), "srgb", {"target": target}, truth_colour_space="srgb",
                      meta={"input_file": str(inputs[key].relative_to(folder))})


class LOL(_PairedDataset):
    kind = "lol"
    title = "LOL low-light pairs"
    task = "enhance"
    splits = ("test", "train", "all")
    layout = "our485/{low,high}/ and/or eval15/{low,high}/ with the same file names"
    _SPLITS = {"train": "our485", "test": "eval15"}
    example_files = ("eval15/low/1.png", "eval15/high/1.png")

    def split_folders(self, folder):
        return {split: folder / name for split, name in self._SPLITS.items() if (folder / name).is_dir()}

    def pairs(self, sub):
        return ({p.stem: p for p in image_files(sub / "low")}, {p.stem: p for p in image_files(sub / "high")})


class Raindrop(_PairedDataset):
    kind = "raindrop"
    title = "Raindrop (Qian et al. 2018)"
    task = "derain"
    splits = ("test", "train", "test_b", "all")
    layout = "data/N_rain.png + gt/N_clean.png (or train/, test_a/, test_b/ of that layout)"
    _SPLITS = {"train": "train", "test": "test_a", "test_b": "test_b"}
    example_files = ("data/1_rain.png", "gt/1_clean.png")
    _KEY = re.compile(r"^(.*?)_(rain|clean)$", re.IGNORECASE)

    def split_folders(self, folder):
        if (folder / "data").is_dir() or (folder / "gt").is_dir():
            return {"test": folder}
        return {split: folder / name for split, name in self._SPLITS.items() if (folder / name).is_dir()}

    def _keyed(self, files):
        out = {}
        for p in files:
            match = self._KEY.match(p.stem)
            out[match.group(1) if match else p.stem] = p
        return out

    def pairs(self, sub):
        return self._keyed(image_files(sub / "data")), self._keyed(image_files(sub / "gt"))
