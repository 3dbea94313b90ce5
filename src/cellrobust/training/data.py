"""Patch datasets and background data loading for training.

Every training patch is a pure function of ``(seed, epoch, index)``: :class:`PatchDataset`
derives its generator from those keys (:func:`cellrobust._rng.derive_rng`), so the patches of
an epoch are the same whatever the number of worker processes or ranks, and a resumed run sees
exactly the patches an uninterrupted run would have seen. :class:`EpochSampler` yields the
``(epoch, index)`` keys (shuffled per epoch, split between DDP ranks).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from cellrobust._rng import derive_rng
from cellrobust._validation import DataError
from cellrobust.data.sample import Sample
from cellrobust.models.unet import normalise
from cellrobust.training.augment import augmented_patch
from cellrobust.training.config import TrainConfig


def frames_from_samples(samples: Sequence[Sample], *, what: str,
                        min_size: int = 1) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(image, binary uint8 mask, name) per annotated sample, checked for training.

    Raises
    ------
    DataError
        When there are no samples, a sample has no labels, or a frame is smaller than
        ``min_size`` on a side.
    """
    frames = []
    for sample in samples:
        if sample.labels is None:
            raise DataError(f"{what}: sample {sample.name} has no mask; training needs "
                            "annotated images")
        image = np.asarray(sample.image)
        if image.ndim != 2:
            raise DataError(f"{what}: sample {sample.name} is not a 2-D gray image "
                            f"(shape {image.shape})")
        if min(image.shape) < min_size:
            raise DataError(f"{what}: sample {sample.name} of shape {image.shape} is smaller "
                            f"than the {min_size} px training patches; lower the patch size")
        frames.append((image, (np.asarray(sample.labels) > 0).astype(np.uint8), sample.name))
    if not frames:
        raise DataError(f"{what}: no annotated samples")
    return frames


class PatchDataset(Dataset):
    """Training patches keyed by ``(epoch, index)``; item = (x, y) tensors (1, S, S) float32.

    ``x`` is normalised as ``config.model.normalisation`` says (after augmentation and
    artefacts, as at inference); ``y`` is the binary foreground.
    """

    def __init__(self, samples: Sequence[Sample], config: TrainConfig) -> None:
        self.frames = frames_from_samples(samples, what="training data",
                                          min_size=config.patch_size)
        self.config = config

    def epoch_length(self) -> int:
        """Patches per epoch."""
        return self.config.patches_per_epoch or len(self.frames) * self.config.patches_per_frame

    def __len__(self) -> int:
        return self.epoch_length()

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        image, mask, name = self.frames[index % len(self.frames)]
        rng = derive_rng(self.config.seed, "patch", epoch, index)
        img, msk, _ = augmented_patch(image, mask, self.config, name=f"{name}/e{epoch}i{index}",
                                      rng=rng)
        x = normalise(img, self.config.model.normalisation)
        return torch.from_numpy(x[None].copy()), torch.from_numpy(msk[None].astype(np.float32))


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` keys: a per-epoch permutation, every ``world``-th for ``rank``.

    Call :meth:`set_epoch` before iterating. With ``world > 1`` the epoch is padded by wrapping
    so that every rank gets the same number of patches (DDP needs equal step counts).
    """

    def __init__(self, length: int, *, seed: int, rank: int = 0, world: int = 1) -> None:
        self.length, self.seed, self.rank, self.world = length, seed, rank, world
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return -(-self.length // self.world)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = derive_rng(self.seed, "order", self.epoch).permutation(self.length)
        total = len(self) * self.world
        order = np.resize(order, total)  # wrap-around padding
        for index in order[self.rank::self.world]:
            yield (self.epoch, int(index))


def make_loader(dataset: PatchDataset, *, rank: int = 0, world: int = 1,
                pin_memory: bool = False) -> tuple[DataLoader, EpochSampler]:
    """DataLoader with ``config.workers`` background processes and its :class:`EpochSampler`.

    Workers are started with ``spawn``, not ``fork``: a forked child inherits OpenCV's and
    OpenMP's thread pools in whatever state the parent left them and deadlocks on first use
    when the parent had already run parallel OpenCV code (the study does, before training).
    The workers persist across epochs, so the start-up cost (importing torch) is paid once.
    """
    config = dataset.config
    sampler = EpochSampler(len(dataset), seed=config.seed, rank=rank, world=world)
    workers = config.workers
    loader = DataLoader(
        dataset, batch_size=config.batch_size, sampler=sampler, num_workers=workers,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
        multiprocessing_context="spawn" if workers > 0 else None,
        pin_memory=pin_memory, drop_last=False,
        generator=torch.Generator().manual_seed(config.seed),
        worker_init_fn=_worker_init if workers > 0 else None,
    )
    return loader, sampler


def _worker_init(_: int) -> None:
    # Workers only cut and augment patches (numpy/OpenCV): one thread each, leaving the cores
    # to the training process.
    from cellrobust._threads import set_compute_threads

    set_compute_threads(1)


__all__ = ["PatchDataset", "EpochSampler", "make_loader", "frames_from_samples"]
