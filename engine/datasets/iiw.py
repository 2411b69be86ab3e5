"""Intrinsic Images in the Wild (Bell et al. 2014): ``<id>.png`` (or .jpg) beside ``<id>.json`` judgements.

The JSON holds ``intrinsic_points`` and ``intrinsic_comparisons`` (see :mod:`engine.metrics.whdr`). Photos are
sRGB. Split: images sorted by numeric id, every fifth one (index 0, 5, 10, …) is ``test`` — the split of Narihira
et al. 2015 that later IIW results (e.g. CGIntrinsics) report on; the rest is ``train``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..registry import InputKind
from .base import (DatasetAdapter, DatasetError, Sample, as_rgb, image_files, natural_key, read_float, read_text_file,
                   unreadable, write_png)


class IIW(DatasetAdapter):
    kind = "iiw"
    title = "Intrinsic Images in the Wild"
    task = "intrinsic"
    input_kind = InputKind.IMAGE
    metrics = ("whdr",)
    splits = ("test", "train", "all")
    layout = "<id>.png|jpg with <id>.json judgements (intrinsic_points, intrinsic_comparisons)"

    def _pairs(self, folder: Path) -> dict[str, tuple[Path, Path | None]]:
        out = {}
        for image in image_files(folder):
            judgement = image.with_suffix(".json")
            out[image.stem] = (image, judgement if judgement.is_file() else None)
        return out

    def problems(self, folder: Path) -> list[str]:
        pairs = self._pairs(folder)
        if not pairs:
            return ["no images found"]
        found = []
        for stem, (image, judgement) in pairs.items():
            if judgement is None:
                found.append(f"{image.name}: no {stem}.json judgement file beside it")
                continue
            try:
                data = json.loads(read_text_file(judgement))
            except DatasetError as exc:
                found.append(str(exc))
                continue
            except ValueError:
                found.append(f"{judgement.name}: not valid JSON")
                continue
            if not isinstance(data, dict):
                found.append(f"{judgement.name}: not a JSON object")
                continue
            for key in ("intrinsic_points", "intrinsic_comparisons"):
                if not isinstance(data.get(key), list):
                    found.append(f"{judgement.name}: no {key!r} list")
        return found + unreadable(folder, [image for image, _ in pairs.values()])

    def write_example(self, folder: Path) -> Path:
        from ..examples import example_image

        write_png(folder / "1.png", example_image(24))
        points = [{"id": 1, "x": 0.25, "y": 0.5, "opaque": True}, {"id": 2, "x": 0.75, "y": 0.5, "opaque": True}]
        comparisons = [{"point1": 1, "point2": 2, "darker": "2", "darker_score": 0.9}]
        (folder / "1.json").write_text(json.dumps({"intrinsic_points": points, "intrinsic_comparisons": comparisons}))
        return folder

    def item_ids(self, folder: Path, split: str) -> list[str]:
        stems = sorted(self._pairs(folder), key=natural_key)
        if split == "all":
            return stems
        return [s for i, s in enumerate(stems) if (i % 5 == 0) == (split == "test")]

    def load(self, folder: Path, item_id: str) -> Sample:
        pair = self._pairs(Path(folder)).get(item_id)
        if pair is None or pair[1] is None:
            raise DatasetError(f"{folder}: no image with judgements named {item_id!r}")
        image = as_rgb(read_float(pair[0]))
        return Sample(item_id, (image,), "srgb", {"judgements": json.loads(pair[1].read_text())},
                      meta={"input_file": pair[0].name})
