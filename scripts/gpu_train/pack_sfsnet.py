"""Pack what the SfSNet GPU run needs: the Surrey Face Model files (3 MB), read from ../shared at run time.

    /work/main/.venv/bin/python scripts/gpu_train/pack_sfsnet.py OUT

Writes OUT/sfm/{sfm_shape_3448.bin, expression_blendshapes_3448.bin} and OUT/README.txt. The training faces are
rendered on the GPU from these files (engine.synth.faces), so nothing else is packed. The SFM is free for
non-commercial use only; it travels in the pack, never in the repository.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.synth.faces import EXPRESSION_FILE, LICENCE, SHAPE_FILE, find_face_model  # noqa: E402


def main(out: str) -> int:
    source = find_face_model()
    target = Path(out) / "sfm"
    target.mkdir(parents=True, exist_ok=True)
    for name in (SHAPE_FILE, EXPRESSION_FILE):
        shutil.copyfile(source / name, target / name)
    (Path(out) / "README.txt").write_text(f"Surrey Face Model files from {source}.\nLicence: {LICENCE}\n")
    total = sum(p.stat().st_size for p in Path(out).rglob("*") if p.is_file())
    print(f"packed {total / 2**20:.2f} MiB into {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
