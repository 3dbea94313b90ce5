"""Reader for the Cell Tracking Challenge 2-D layout.

Layout (Ulman et al., Nat. Methods 14:1141, 2017; https://celltrackingchallenge.net)::

    <dataset>/01/t000.tif ...            original frames (3 or 4 digit numbers)
    <dataset>/01_GT/SEG/man_seg000.tif   gold-truth instance masks, only for some frames
    <dataset>/01_ST/SEG/man_seg000.tif   silver-truth instance masks (computer-generated)
    <dataset>/02/...                     a second sequence

Masks are 16-bit instance labels (relabelled sequentially here). A mask that is *binary* (its only
non-zero value is 1, 255 or 65535, as some silver-truth or hand-made masks are) is split into
8-connected components and that frame's ``meta["approximate_instances"]`` is True (decided per
frame; see :func:`cellrobust.data._convert.to_labels`). ``masks="gt"`` (the default) uses gold
truth, ``"st"`` silver truth, ``"gt+st"`` gold where a frame has it and silver elsewhere; the sample's
``meta["truth"]`` says which. Frames without the chosen masks carry ``labels=None`` and are skipped
by :func:`~cellrobust.data.open_dataset` unless ``unannotated="keep"``. 3-D slice annotations
(``man_seg_TTT_ZZZ.tif``) are ignored. The path may be the data set folder or one sequence folder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from cellrobust._validation import InputError, check_choice
from cellrobust.data._base import Dataset, Entry, Reader
from cellrobust.data._layout import image_files, numbered, reject_options, unpaired_error

NAME = "ctc"
DESCRIPTION = (
    "Cell Tracking Challenge 2-D layout: NN/tNNN.tif frames with NN_GT/SEG/man_segNNN.tif "
    "and/or NN_ST/SEG/man_segNNN.tif masks"
)
FRAME_RE = r"t(\d{3,4})\.tiff?"
MASK_RE = r"man_seg(\d{3,4})\.tiff?"
_SEQ_RE = re.compile(r"\d{2,3}")
MASK_CHOICES = ("gt", "st", "gt+st")


def _sequences(root: Path) -> list[str]:
    return sorted(
        d.name for d in root.iterdir()
        if d.is_dir() and _SEQ_RE.fullmatch(d.name) and image_files(d, FRAME_RE)
    ) if root.is_dir() else []


def _is_sequence_folder(path: Path) -> bool:
    return (
        path.is_dir() and _SEQ_RE.fullmatch(path.name) is not None
        and bool(image_files(path, FRAME_RE))
    )


def can_read(path: Path) -> bool:
    """True for a folder with ``NN/tNNN.tif`` sequences, or one such sequence folder (a data
    set without ``NN_GT``/``NN_ST`` masks is recognised too: it has no annotated frame)."""
    return _is_sequence_folder(path) or bool(_sequences(path))


def read(path: Path, *, masks: str | None = None,
         sequences: str | Sequence[str] | None = None, **options) -> Dataset:
    """Build the lazy :class:`~cellrobust.data.Dataset` (every frame; unannotated ones with
    ``mask=None``). ``masks``: ``"gt"`` (None), ``"st"`` or ``"gt+st"``; ``sequences``:
    ``"01"``, ``["01", "02"]`` or None for all."""
    reject_options(NAME, options, ())
    masks = "gt" if masks is None else masks
    check_choice("masks", masks, MASK_CHOICES)
    root = path
    if _is_sequence_folder(path):
        root, chosen = path.parent, [path.name]
        if sequences is not None and _as_list(sequences) != chosen:
            raise InputError(f"sequences: {path} is sequence {path.name}; got {sequences!r}")
    else:
        chosen = _choose(_sequences(root), sequences, root)
    entries: list[Entry] = []
    for seq in chosen:
        entries += _sequence_entries(root, seq, masks)
    return Dataset(entries, format=NAME, path=path)


def _as_list(sequences: str | Sequence[str]) -> list[str]:
    return [sequences] if isinstance(sequences, str) else [str(s) for s in sequences]


def _choose(available: list[str], sequences, root: Path) -> list[str]:
    if sequences is None:
        return available
    wanted = [s.zfill(2) for s in _as_list(sequences)]
    unknown = [s for s in wanted if s not in available]
    if unknown:
        raise InputError(
            f"sequences: {root} has no sequence {', '.join(unknown)}; "
            f"available: {', '.join(available) or 'none'}"
        )
    return wanted


def _sequence_entries(root: Path, seq: str, masks: str) -> list[Entry]:
    frames = numbered(image_files(root / seq, FRAME_RE), FRAME_RE)
    truths = {kind: numbered(image_files(root / f"{seq}_{kind.upper()}" / "SEG", MASK_RE), MASK_RE)
              for kind in ("gt", "st")}
    orphans = [f for t in truths.values() for n, f in t.items() if n not in frames]
    if orphans:
        raise unpaired_error(root, "masks without images", orphans,
                             f"a frame {seq}/tNNN.tif for every man_segNNN.tif")
    entries = []
    for number, image in sorted(frames.items()):
        truth, mask = _pick_mask(truths, number, masks)
        meta = {"format": NAME, "dataset": root.name, "sequence": seq, "frame": number}
        if truth:
            meta["truth"] = truth
        entries.append(Entry(name=f"{root.name}/{seq}/{image.stem}", image=image, mask=mask,
                             mask_kind="auto", meta=meta))
    return entries


def _pick_mask(truths: dict, number: int, masks: str) -> tuple[str | None, Path | None]:
    for kind in masks.split("+"):
        if number in truths[kind]:
            return kind, truths[kind][number]
    return None, None


READERS = [Reader(NAME, DESCRIPTION, can_read, read)]
