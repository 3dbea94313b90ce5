"""The training loop: epochs of patches, whole-frame validation, checkpoints, early stopping.

:func:`train` is the entry point; :class:`Trainer` holds the state between short steps
(``_train_epoch``, ``validate``, ``_end_epoch``). A run folder holds ``config.yaml`` (the
resolved :class:`TrainConfig`), ``best.pt`` (weights of the best epoch by ``monitor``),
``last.pt`` (everything needed to resume: weights, optimizer, scheduler, early-stopping and RNG
state, history), ``history.csv`` (after every epoch), ``curves.png`` (when training ends) and
``data.json`` (where the data came from and digests of it, :mod:`.resume`). ``train(..., resume=True)`` continues from ``last.pt`` exactly: the
patches of an epoch depend only on (seed, epoch, index), and the torch RNG (dropout) state is
restored; other data, or a changed config field other than :data:`.resume.SAFE_ON_RESUME`, is
refused. ``on_epoch(record)`` is called after every epoch (checkpoints already written); it may
raise :class:`StopTraining` to end the run cleanly with the best weights.

Validation runs on whole frames (reflect-padded to a multiple of ``2**depth``): ``val_loss`` is
the mean BCE over all pixels, ``val_jaccard`` the foreground IoU TP / (TP + FP + FN) with counts
pooled over all validation frames (micro average), ``val_jaccard_macro`` the mean of per-frame
IoUs (a frame with an empty union scores 1), ``val_accuracy`` the pooled pixel accuracy.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cellrobust._io import remove_stale_temporaries, write_text
from cellrobust._validation import DataError, InputError
from cellrobust.data.sample import Sample
from cellrobust.models.checkpoint import read_checkpoint, save_checkpoint
from cellrobust.models.unet import build_unet, normalise
from cellrobust.training import ddp, resume as resume_rules
from cellrobust.training.components import (loss_function, make_optimizer, make_scheduler,
                                             select_device_options)
from cellrobust.training.config import MONITORS, TrainConfig
from cellrobust.training.data import PatchDataset, frames_from_samples, make_loader
from cellrobust.training.history import plot_curves, write_history


def init_state_dict(config: TrainConfig) -> dict[str, torch.Tensor]:
    """The weights of ``config.init_weights``, checked against ``config.model``.

    The architecture must match; the input scaling may differ: ``normalisation`` scales the
    gray levels before the network and holds no weights, so a fine-tune may change it (e.g.
    ``max`` to ``percentile``, an affine change of the input that the first layer absorbs).
    Called by the train stage before it claims its output folder, so a mismatch leaves nothing.
    """
    path = config.init_weights
    payload = read_checkpoint(path)
    theirs, ours = dict(payload["model_config"]), config.model.to_dict()
    theirs.pop("normalisation", None)
    ours.pop("normalisation", None)
    if theirs != ours:
        raise InputError(f"init_weights: {path} holds a different architecture ({theirs}, "
                         f"this config: {ours}); set the model config to match")
    return payload["state_dict"]


class StopTraining(Exception):
    """Raised by an ``on_epoch`` callback to end training after the current epoch.

    :func:`train` catches it, restores the best weights and returns ``best.pt`` as after early
    stopping; ``last.pt`` stays resumable.
    """


class TrainingDiverged(DataError):
    """The training loss became NaN or infinite (too high a learning rate, bad data)."""


EpochCallback = Callable[[dict[str, Any]], None]


class Trainer:
    """State of one training run; see :func:`train`."""

    def __init__(self, config: TrainConfig, train_samples: Sequence[Sample],
                 val_samples: Sequence[Sample], *, run_dir: str | os.PathLike,
                 progress: bool = True, on_epoch: EpochCallback | None = None,
                 data_source: Mapping[str, Any] | None = None, curves: bool = True) -> None:
        self.config, self.run_dir, self.progress = config, Path(run_dir), progress
        self.curves = curves
        self.on_epoch, self.data_source = on_epoch, data_source
        self.device, self.amp_dtype, self.channels_last = select_device_options(config)
        self.ctx = ddp.setup(self.device)
        self.dataset = PatchDataset(train_samples, config)
        self.loader, self.sampler = make_loader(self.dataset, rank=self.ctx.rank,
                                                world=self.ctx.world,
                                                pin_memory=self.device.type == "cuda")
        self.val_frames = frames_from_samples(val_samples, what="validation data")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)  # weights depend on the seed only, not on globals
            self.net = build_unet(config.model)
        if config.init_weights:
            self.net.load_state_dict(init_state_dict(config))
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.net = self.net.to(self.device, memory_format=fmt)
        self.model = ddp.wrap(self.net, self.ctx, self.device)
        self.optimizer = make_optimizer(config, self.net.parameters())
        self.scheduler = make_scheduler(config, self.optimizer)
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.loss_fn = loss_function(config.loss)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best = {"value": None, "epoch": None, "wait": 0}
        self.torch_rng = _seeded_rng_state(config.seed + 1 + self.ctx.rank)

    # -- one epoch -------------------------------------------------------------------------
    def _train_epoch(self) -> tuple[float, int]:
        self.model.train()
        self.sampler.set_epoch(self.epoch)
        total, steps = 0.0, 0
        bar = self._bar(len(self.loader))
        for x, y in self._batches():
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            y = y.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                logits = self.model(x)
            loss = self.loss_fn(logits, y)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"training diverged at epoch {self.epoch + 1} (loss {loss}); "
                                "lower the learning rate or check the data normalisation")
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total, steps = total + loss.detach().item(), steps + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{total / steps:.4f}")
        if bar is not None:
            bar.close()
        return total / max(steps, 1), steps

    def _batches(self):
        """Iterate the loader; a worker that died while starting becomes a clear error."""
        try:
            yield from self.loader
        except RuntimeError as exc:
            if "exited unexpectedly" not in str(exc):
                raise
            raise InputError(
                "workers: a data-loading worker process died (its own error is printed above). "
                "Workers start with 'spawn', which re-imports the main script: a script that "
                "calls cellrobust.training.train must do so under `if __name__ == "
                "'__main__':`; or set workers=0") from exc

    def _bar(self, total: int):
        if not (self.progress and self.ctx.is_main):
            return None
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
                    leave=True, dynamic_ncols=True)

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Whole-frame validation metrics (see the module docstring), summed over ranks."""
        self.model.eval()
        sums = torch.zeros(7, dtype=torch.float64)  # loss, px, tp, fp, fn, tn, sum IoU; frames
        frames = 0
        for image, mask, _ in self.val_frames[self.ctx.rank::self.ctx.world]:
            logits = self._frame_logits(image)
            target = torch.from_numpy(mask).float()
            sums[0] += F.binary_cross_entropy_with_logits(logits, target, reduction="sum")
            pred = torch.sigmoid(logits) > self.config.val_threshold
            truth = target > 0
            tp, fp = float((pred & truth).sum()), float((pred & ~truth).sum())
            fn, tn = float((~pred & truth).sum()), float((~pred & ~truth).sum())
            union = tp + fp + fn
            sums[1:7] += torch.tensor([truth.numel(), tp, fp, fn, tn,
                                       tp / union if union else 1.0], dtype=torch.float64)
            frames += 1
        sums = ddp.all_reduce_sum(torch.cat([sums, torch.tensor([frames], dtype=torch.float64)]),
                                  self.ctx)
        loss, px, tp, fp, fn, tn, iou_sum, n = sums.tolist()
        union = tp + fp + fn
        return {"val_loss": loss / px, "val_jaccard": tp / union if union else 1.0,
                "val_jaccard_macro": iou_sum / max(n, 1), "val_accuracy": (tp + tn) / px}

    def _frame_logits(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(normalise(image, self.config.model.normalisation))
        h, w = x.shape
        m = self.config.model.multiple
        ph, pw = (-h) % m, (-w) % m
        x = x[None, None]
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            x = F.pad(x, (0, pw, 0, ph), mode=mode)
        x = x.to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            logits = self.net(x)
        return logits.float()[0, 0, :h, :w].cpu()

    # -- bookkeeping -----------------------------------------------------------------------
    def _improved(self, value: float) -> bool:
        best = self.best["value"]
        if best is None or not math.isfinite(best):
            return math.isfinite(value)
        return value < best if MONITORS[self.config.monitor] == "min" else value > best

    def _end_epoch(self, row: dict[str, Any]) -> bool:
        """Record the epoch, write checkpoints/history (rank 0); return True to stop early."""
        value = row[self.config.monitor]
        improved = self._improved(value)
        if improved:
            self.best = {"value": value, "epoch": row["epoch"], "wait": 0}
        else:
            self.best["wait"] += 1
        if self.scheduler is not None:
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(value)
            else:
                self.scheduler.step()
        self.history.append(row)
        self.epoch = row["epoch"]
        self.torch_rng = torch.get_rng_state()
        if self.ctx.is_main:
            if improved:
                save_checkpoint(self.run_dir / "best.pt", self.net, self.config.model,
                                meta=self._meta(row))
            save_checkpoint(self.run_dir / "last.pt", self.net, self.config.model,
                            meta=self._meta(row), train_state=self._train_state())
            write_history(self.history, self.run_dir / "history.csv")
        ddp.barrier(self.ctx)
        return self.best["wait"] >= self.config.patience

    def _meta(self, row: dict[str, Any]) -> dict[str, Any]:
        return {"epoch": row["epoch"], "metrics": dict(row), "monitor": self.config.monitor,
                "best_value": self.best["value"], "best_epoch": self.best["epoch"],
                "train_config": self.config.to_dict(), "world_size": self.ctx.world}

    def _train_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "best": dict(self.best),
                "history": [dict(r) for r in self.history], "epoch": self.epoch,
                "torch_rng": self.torch_rng}

    def load_resume_state(self) -> None:
        """Restore weights, optimizer, scheduler, early stopping, RNG and history from last.pt."""
        last = self.run_dir / "last.pt"
        payload = read_checkpoint(last)
        state = payload.get("train_state")
        if not state:
            raise DataError(f"{last}: holds no training state; cannot resume from it")
        saved = payload["meta"].get("train_config", {})
        changes = resume_rules.config_changes(saved, self.config.to_dict()) if saved else {}
        self.net.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.best, self.history = dict(state["best"]), list(state["history"])
        self.epoch, self.torch_rng = int(state["epoch"]), state["torch_rng"]
        if changes and self.ctx.is_main:
            _write_config(self.config, self.run_dir, self.execution())
            resume_rules.record_changes(self.run_dir, self.epoch, changes)

    def _data_record(self) -> dict[str, Any]:
        source = self.data_source
        if source is None:  # keep the paths a caller (the CLI) already wrote
            source = resume_rules.read_data_record(self.run_dir) or {}
        return resume_rules.data_record(self.dataset.frames, self.val_frames, source=source)

    def _start(self, resume: bool) -> None:
        """Check (resume) or write (fresh run) config.yaml and data.json."""
        record = self._data_record()
        if resume:
            saved = resume_rules.read_data_record(self.run_dir)
            resume_rules.check_data(self.run_dir, saved, record)
            if self.ctx.is_main:
                remove_stale_temporaries(self.run_dir)  # a killed writer's leftovers
            self.load_resume_state()
        elif self.ctx.is_main:
            _write_config(self.config, self.run_dir, self.execution())
        if self.ctx.is_main:
            resume_rules.write_data_record(self.run_dir, record)

    def execution(self) -> dict[str, Any]:
        """Device, autocast precision and memory format this run uses (``auto`` resolved)."""
        from cellrobust.models.fastpath import cpu_features

        return {"device": str(self.device),
                "autocast": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype
                else "none (fp32)",
                "channels_last": bool(self.channels_last), "cpu_features": cpu_features()}

    # -- the run ---------------------------------------------------------------------------
    def fit(self, *, resume: bool = False) -> Path:
        """Train until ``epochs`` or early stopping; return the path of ``best.pt``."""
        self._start(resume)
        with torch.random.fork_rng(devices=[]), _threads(self.config, self.device):
            torch.set_rng_state(self.torch_rng)  # never disturb the caller's global RNG
            while self.epoch < self.config.epochs:
                if self.best["wait"] >= self.config.patience:
                    break
                start = time.perf_counter()
                train_loss, steps = self._train_epoch()
                row = {"epoch": self.epoch + 1, "train_loss": train_loss, **self.validate(),
                       "lr": self.optimizer.param_groups[0]["lr"],
                       "seconds": time.perf_counter() - start, "steps": steps}
                self._report(row)
                if self._end_epoch(row) or self._callback(row):
                    break
        self._restore_best()
        if self.curves and self.ctx.is_main and self.history:
            plot_curves(self.history, self.run_dir / "curves.png", monitor=self.config.monitor)
        return self.run_dir / "best.pt"

    def _callback(self, row: dict[str, Any]) -> bool:
        """Call ``on_epoch``; True when it raised :class:`StopTraining`."""
        if self.on_epoch is None:
            return False
        record = {**row, "step": sum(int(r["steps"]) for r in self.history),
                  "monitor": self.config.monitor, "best_value": self.best["value"],
                  "best_epoch": self.best["epoch"]}
        try:
            self.on_epoch(record)
        except StopTraining:
            return True
        return False

    def _restore_best(self) -> None:
        best = self.run_dir / "best.pt"
        ddp.barrier(self.ctx)
        if best.is_file():
            self.net.load_state_dict(read_checkpoint(best)["state_dict"])

    def _report(self, row: dict[str, Any]) -> None:
        if self.progress and self.ctx.is_main:
            print(f"epoch {row['epoch']}: train_loss {row['train_loss']:.4f} val_loss "
                  f"{row['val_loss']:.4f} val_jaccard {row['val_jaccard']:.4f} "
                  f"val_accuracy {row['val_accuracy']:.4f} ({row['seconds']:.0f} s)", flush=True)


@contextlib.contextmanager
def _threads(config: TrainConfig, device: torch.device) -> Iterator[None]:
    """Torch intra-op threads = ``config.threads`` during training (only when given; CPU)."""
    if not config.threads or device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _seeded_rng_state(seed: int) -> torch.Tensor:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.get_rng_state()


def _write_config(config: TrainConfig, run_dir: Path, execution: Mapping[str, Any]) -> None:
    """The config as data, then what ``auto`` options resolved to on this machine as YAML
    comments (for the reader; reading the file back gives the config only). A resume that
    changes the config rewrites it with the resuming machine's resolution."""
    import yaml

    resolved = "".join(f"#   {key}: {value}\n" for key, value in execution.items())
    write_text(run_dir / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False)
               + "# resolved on the machine that wrote this file (not read back):\n"
               + resolved)


def train(config: TrainConfig, train_samples: Sequence[Sample], val_samples: Sequence[Sample],
          *, run_dir: str | os.PathLike, progress: bool = True, resume: bool = False,
          on_epoch: EpochCallback | None = None,
          data_source: Mapping[str, Any] | None = None, curves: bool = True) -> Path:
    """Train a U-Net; return the path of ``best.pt`` in ``run_dir``.

    Parameters
    ----------
    config : TrainConfig
    train_samples, val_samples : sequence of Sample
        Annotated frames (labels > 0 is the foreground). Training frames must be at least
        ``config.patch_size`` on each side; validation frames may have any size.
    run_dir : path-like
        Output folder (created). With ``resume=True`` it must hold ``last.pt``.
    progress : bool
        Progress bar per epoch and one summary line per epoch (rank 0 only).
    resume : bool
        Continue the interrupted run in ``run_dir`` exactly where its last epoch ended. The
        data must be the run's (same frame digests) and ``config`` its saved config, except
        for :data:`~cellrobust.training.resume.SAFE_ON_RESUME` fields (e.g. more ``epochs``),
        whose changes are applied and recorded in ``resume.json``.
    on_epoch : callable, optional
        ``on_epoch(record)`` after every epoch, on every rank, once the epoch's checkpoints
        are written. ``record`` holds the ``history.csv`` columns (``epoch``, ``train_loss``,
        ``val_loss``, ``val_jaccard``, ``val_jaccard_macro``, ``val_accuracy``, ``lr``,
        ``seconds``, ``steps``) plus ``step`` (optimizer steps so far), ``monitor``,
        ``best_value`` and ``best_epoch``. Raising :class:`StopTraining` ends the run cleanly
        (best weights restored, ``best.pt`` returned); any other exception propagates.
    data_source : mapping, optional
        ``{"data": path or None, "val_data": path or None}``: where the samples came from,
        recorded in ``data.json`` and named in resume errors. ``None`` keeps the paths already
        in ``run_dir/data.json``.
    curves : bool
        Draw ``curves.png`` when training ends (about a second per run; tuning trials skip it).

    Raises
    ------
    InputError
        On resume with other data or an unsafe config change (one line listing the
        differences).
    """
    trainer = Trainer(config, train_samples, val_samples, run_dir=run_dir, progress=progress,
                      on_epoch=on_epoch, data_source=data_source, curves=curves)
    try:
        return trainer.fit(resume=resume)
    finally:
        ddp.teardown(trainer.ctx)


def load_run_config(run_dir: str | os.PathLike) -> TrainConfig:
    """The resolved :class:`TrainConfig` stored in ``run_dir/config.yaml``."""
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise DataError(f"{path}: not found; is {run_dir} a cellrobust training run folder?")
    return TrainConfig.from_dict(yaml.safe_load(path.read_text()))


__all__ = ["train", "Trainer", "StopTraining", "TrainingDiverged", "load_run_config",
           "select_device_options", "loss_function", "make_optimizer", "make_scheduler"]
