"""The ``export`` stage: a checkpoint -> TorchScript, ONNX and a bioimage.io package.

``run(ExportConfig(checkpoint, out_dir))`` writes ``model.torchscript.pt`` and ``model.onnx``
(raw gray levels in, probabilities out, cellrobust's export metadata inside; read by the
``torchscript:`` and ``onnx:`` segmenters) and ``<name>.bioimageio.zip`` (validated; read by
``bioimageio:`` and by Fiji/DeepImageJ, ilastik, QuPath). With ``robustness=RESULTS_DIR`` the
study's ``summary.md``, ``scores.csv``, ``curves.csv`` and ``figures/*.png`` travel in the
package as attachments and its documentation gains a "Robustness" section: the robustness card.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cellrobust._validation import DataError, InputError, collect_errors

__all__ = ["FORMATS", "ExportConfig", "export_all", "load_test_image", "robustness_card", "run"]

FORMATS = ("torchscript", "onnx", "bioimageio")
FILENAMES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
#: Files of a results folder that make up the robustness card (when present).
CARD_FILES = ("summary.md", "scores.csv", "curves.csv", "paired.csv")
MAX_TEST_SIDE = 512


@dataclass(frozen=True)
class ExportConfig:
    """What to export and where.

    Attributes
    ----------
    checkpoint : path
        A cellrobust ``.pt`` checkpoint.
    out_dir : path
        Output folder (created).
    formats : tuple of str
        Any of ``torchscript``, ``onnx``, ``bioimageio`` (default all).
    test_image : path, ndarray or None
        (H, W) gray levels with cells for the export checks and the package's test tensors,
        cropped to sides that are multiples of the size multiple (at most 512 px); None = a
        256 x 256 crop of a simulated frame.
    name : str or None
        Model name in the package (default ``cellrobust U-Net <checkpoint stem>``).
    robustness : path or None
        A study's results folder (``summary.md`` and ``figures/*.png`` at least) to attach.
    overwrite : bool
        Write into an ``out_dir`` holding files cellrobust did not write (never the inputs).
    """

    checkpoint: str | os.PathLike
    out_dir: str | os.PathLike
    formats: tuple[str, ...] = FORMATS
    test_image: str | os.PathLike | np.ndarray | None = None
    name: str | None = None
    robustness: str | os.PathLike | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(self.formats))
        errors = []
        unknown = sorted(set(self.formats) - set(FORMATS))
        if unknown or not self.formats:
            errors.append(f"formats: expected some of {', '.join(FORMATS)}, got "
                          f"{list(self.formats)}")
        if not Path(self.checkpoint).is_file():
            errors.append(f"checkpoint: {self.checkpoint} not found; give a .pt file written "
                          "by cellrobust train")
        if self.robustness is not None and not (Path(self.robustness) / "summary.md").is_file():
            errors.append(f"robustness: {self.robustness} has no summary.md; give a study's "
                          "results folder (its report writes summary.md and figures/)")
        if self.robustness is not None and "bioimageio" not in self.formats:
            errors.append("robustness: the card goes into the bioimage.io package; add "
                          "'bioimageio' to formats")
        collect_errors(errors, "ExportConfig")


def run(config: ExportConfig) -> dict[str, Path]:
    """Write the requested exports; return ``{format: path}``.

    Raises
    ------
    InputError
        Invalid configuration or test image.
    DataError
        An export differs from PyTorch, the test output is all background, or the package
        is invalid (nothing invalid is left on disk).
    """
    from cellrobust.models.checkpoint import load_checkpoint
    from cellrobust.models.export import to_onnx, to_torchscript
    from cellrobust.stages._outputs import guarded_output

    net, _, meta = load_checkpoint(config.checkpoint)
    image = load_test_image(config.test_image, net.config.multiple)
    inputs = [config.checkpoint] + ([config.test_image] if isinstance(
        config.test_image, (str, os.PathLike)) else [])
    with guarded_output(config.out_dir, owner="export", inputs=inputs,
                        overwrite=config.overwrite) as out:
        written: dict[str, Path] = {}
        for kind, write in (("torchscript", to_torchscript), ("onnx", to_onnx)):
            if kind in config.formats:
                write(net, out / FILENAMES[kind], test_image=image)
                written[kind] = out / FILENAMES[kind]
        if "bioimageio" in config.formats:
            written["bioimageio"] = _package(config, net, meta, image, out)
    return written


def _package(config: ExportConfig, net, meta: dict, image: np.ndarray, out: Path) -> Path:
    from cellrobust.models.bioimageio import write_package

    attachments, card = ((), None)
    if config.robustness is not None:
        attachments, card = robustness_card(config.robustness)
    name = config.name or f"cellrobust U-Net {Path(config.checkpoint).stem}"
    return write_package(net, meta, out, test_image=image, name=name,
                         attachments=attachments, robustness=card)


def robustness_card(results_dir: str | os.PathLike) -> tuple[list[Path], str]:
    """The files of a study's results folder to attach, and the documentation's section.

    Returns
    -------
    attachments : list of Path
        ``summary.md``, ``scores.csv``, ``curves.csv``, ``paired.csv`` (those present) and
        ``figures/*.png``.
    section : str
        Markdown: the study's summary (headings demoted below "Robustness") and the list of
        attached files.
    """
    folder = Path(results_dir)
    files = [folder / n for n in CARD_FILES if (folder / n).is_file()]
    files += sorted((folder / "figures").glob("*.png"))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise DataError(f"robustness: {folder} holds two attachments with the same file name; "
                        "rename one (package attachments are flat)")
    summary = (folder / "summary.md").read_text(encoding="utf-8")
    body = "\n".join("##" + line if line.startswith("#") else line
                     for line in summary.splitlines())
    listing = "\n".join(f"- `{n}`" for n in names)
    return files, (f"How far this model can be trusted under microscopy artefacts, measured "
                   f"with cellrobust (attached files:\n{listing}\n).\n\n{body}")


def load_test_image(source, multiple: int) -> np.ndarray:
    """(H, W) float32 test image: ``source`` (file or array; None = a simulated crop) cropped
    to sides that are multiples of ``multiple``, at most 512 px."""
    from cellrobust._io import read_image

    if source is None:
        from cellrobust.data.synthetic import simulate_frame

        image = np.asarray(simulate_frame(rng=0).image[:256, :256])
    elif isinstance(source, np.ndarray):
        image = source
    else:
        image = read_image(source)
    if image.ndim != 2:
        raise InputError(f"test image: expected a 2-D gray image, got shape {image.shape}; "
                         "give one gray channel")
    h, w = (min(s - s % multiple, MAX_TEST_SIDE) for s in image.shape)
    if h < multiple or w < multiple:
        raise InputError(f"test image: expected at least {multiple} x {multiple} px, got "
                         f"{image.shape}")
    return np.asarray(image[:h, :w], dtype=np.float32)


def export_all(checkpoint, out_dir, *, formats: tuple[str, ...] = FORMATS, test_image=None,
               name: str | None = None) -> dict[str, Path]:
    """``run(ExportConfig(...))`` with keyword options (the former
    ``cellrobust.models.export.export_all``)."""
    return run(ExportConfig(checkpoint, out_dir, formats=formats, test_image=test_image,
                            name=name))
