"""Models shipped with cellrobust, selectable by name (``--model psc-robust``).

Each name maps to a cellrobust checkpoint inside the package (``cellrobust/zoo/``), with its
training recipe (``configs/<name>.yaml`` in the repository, copied into the checkpoint's meta)
and the scores measured for it in ``src/cellrobust/zoo/README.md``. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ZOO", "zoo_path"]

#: name -> (checkpoint file in cellrobust/zoo, one-line description)
ZOO: dict[str, tuple[str, str]] = {
    "psc-robust": ("psc-robust.pt", "PhC-C2DL-PSC U-Net: psc-original fine-tuned with "
                   "illumination and noise on part of the patches, dihedral, percentile input"),
    "psc-robust-scale": ("psc-robust-scale.pt", "PhC-C2DL-PSC U-Net trained with "
                         "illumination, noise and zoom 0.5-2 (the robust recipe): for cells "
                         "that change size, at a cost on clean images"),
    "psc-original": ("psc-original.pt", "PhC-C2DL-PSC U-Net, the studies' original recipe "
                     "(no augmentation)"),
}


def zoo_path(name: str) -> Path | None:
    """The shipped checkpoint called ``name``, or None when ``name`` is not a zoo model."""
    if name not in ZOO:
        return None
    return Path(__file__).resolve().parents[1] / "zoo" / ZOO[name][0]
