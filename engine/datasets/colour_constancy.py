"""Colour constancy: linear raw RGB images with one ground-truth illuminant each.

Two ground-truth layouts are read:

* INTEL-TAU: ``<stem>.png`` beside ``<stem>_metadata.json`` holding ``illuminant_color_raw`` = [r, g, b]. When
  such files exist, any ``.csv``/``.txt`` in the folder (a README, notes) is not read as a ground-truth table.
* Gehler-Shi / Cube+: a folder of images and one CSV/text file of illuminants. Either a header row naming
  ``image`` (or ``file``/``name``) and ``r, g, b`` columns, or bare rows of three numbers in the images' natural
  order (Cube+'s ``cube+_gt.txt``: row i belongs to ``i.PNG``).

Images must already be black-level corrected (INTEL-TAU ships them so). The split is the whole folder (``all``,
also called ``test``): the standard evaluation of these datasets is cross-validation, which this adapter does not
impose.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..registry import InputKind
from .base import (DatasetAdapter, DatasetError, Sample, as_rgb, image_files, read_float, read_text_file, unreadable,
                   write_png)

_GT_SUFFIXES = (".csv", ".txt")
_NAME_COLUMNS = ("image", "file", "filename", "name")


class ColourConstancy(DatasetAdapter):
    kind = "color-constancy"
    title = "Colour constancy (INTEL-TAU JSON or Gehler-Shi/Cube+ CSV)"
    task = "illuminant"
    input_kind = InputKind.RAW_IMAGE
    metrics = ("angular_error",)
    splits = ("test", "all")
    layout = "images + <stem>_metadata.json (INTEL-TAU), or images + one CSV of r,g,b illuminants"

    def _gt_table(self, folder: Path) -> tuple[Path | None, list[str]]:
        tables = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _GT_SUFFIXES)
        return (tables[0] if len(tables) == 1 else None), [p.name for p in tables]

    def illuminants(self, folder: Path) -> tuple[dict[str, Path], dict[str, list[float]], list[str]]:
        """(stem → image, stem → illuminant, problems)."""
        images = {p.stem: p for p in image_files(folder)}
        truth: dict[str, list[float]] = {}
        problems: list[str] = []
        # INTEL-TAU metadata first: a stray README.txt or notes.csv beside the images must not be read as the table.
        for stem in images:
            meta = folder / f"{stem}_metadata.json"
            if not meta.is_file():
                continue
            try:
                value = json.loads(read_text_file(meta))["illuminant_color_raw"]
                truth[stem] = [float(v) for v in value]
            except DatasetError as exc:
                problems.append(str(exc))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"{meta.name}: no readable illuminant_color_raw ({exc.__class__.__name__})")
        if not truth and not problems:
            table, tables = self._gt_table(folder)
            if len(tables) > 1:
                problems.append(f"several ground-truth tables ({', '.join(tables)}); keep exactly one")
            if table is not None:
                truth, table_problems = self._read_table(table, list(images))
                problems += table_problems
        for stem, rgb in truth.items():
            if len(rgb) != 3 or not np.all(np.isfinite(rgb)) or min(rgb) < 0 or max(rgb) <= 0:
                problems.append(f"{stem}: illuminant {rgb} is not three non-negative numbers")
        return images, truth, problems

    def _read_table(self, table: Path, stems: list[str]):
        try:
            text = read_text_file(table)
        except DatasetError as exc:
            return {}, [str(exc)]
        rows = [r for r in csv.reader(text.replace("\t", ",").splitlines()) if any(c.strip() for c in r)]
        rows = [[c.strip() for c in (r if len(r) > 1 else r[0].split())] for r in rows]
        truth, problems = {}, []
        header = [c.lower() for c in rows[0]] if rows else []
        name_col = next((header.index(c) for c in _NAME_COLUMNS if c in header), None)
        if name_col is not None and all(c in header for c in ("r", "g", "b")):
            idx = [header.index(c) for c in ("r", "g", "b")]
            for n, row in enumerate(rows[1:], start=2):
                try:
                    truth[Path(row[name_col]).stem] = [float(row[i]) for i in idx]
                except (ValueError, IndexError):
                    problems.append(f"{table.name} line {n}: cannot read r, g, b")
        else:
            if len(rows) != len(stems):
                problems.append(f"{table.name}: {len(rows)} rows of illuminants for {len(stems)} images "
                                f"(bare rows must match the images in natural order)")
            for n, (row, stem) in enumerate(zip(rows, stems), start=1):
                try:
                    truth[stem] = [float(v) for v in row[:3]]
                except ValueError:
                    problems.append(f"{table.name} line {n}: cannot read three numbers")
        return truth, problems

    def problems(self, folder: Path) -> list[str]:
        images, truth, problems = self.illuminants(folder)
        if not images:
            return ["no images found"]
        missing = [stem for stem in images if stem not in truth]
        if missing:
            problems.append(f"{len(missing)} image(s) without a ground-truth illuminant, e.g. {missing[0]}")
        return problems + unreadable(folder, images.values())

    def write_example(self, folder: Path) -> Path:
        from ..examples import example_raw

        write_png(folder / "1.png", example_raw(24), bits=16)
        (folder / "1_metadata.json").write_text(json.dumps({"illuminant_color_raw": [1.0, 0.8, 0.55]}))
        return folder

    def item_ids(self, folder: Path, split: str) -> list[str]:
        images, truth, _ = self.illuminants(folder)
        return [stem for stem in images if stem in truth]

    def load(self, folder: Path, item_id: str) -> Sample:
        images, truth, _ = self.illuminants(Path(folder))
        if item_id not in images or item_id not in truth:
            raise DatasetError(f"{folder}: no image with ground truth named {item_id!r}")
        image = as_rgb(read_float(images[item_id]))
        return Sample(item_id, (image,), "linear", {"illuminant": np.asarray(truth[item_id], dtype=np.float64)},
                      meta={"input_file": images[item_id].name})
