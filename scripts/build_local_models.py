#!/usr/bin/env python
"""Build one model of every external kind from local material only (nothing is downloaded).

Into ``--out`` it writes:

``export/``
    ``cellrobust export`` of the shipped checkpoint ``psc-robust``
    (``src/cellrobust/zoo/psc-robust.pt``): ``model.torchscript.pt``, ``model.onnx`` and
    ``PSC-U-Net-psc-robust.bioimageio.zip`` (validated by ``bioimageio.spec``), its test tensors
    cut from a PSC training frame. For ``torchscript:``, ``onnx:`` and ``bioimageio:``. The
    checkpoint is percentile-normalised, so the two stand-alone graphs take normalised input
    (their metadata says so and the adapters normalise each frame, as the checkpoint does).
``stardist/stardist_psc/``
    A small StarDist2D (32 rays, grid 2x2, U-Net depth 3 / 32 filters) trained briefly on PSC
    training frames (``train/``; the binary masks' connected components are the instances,
    holes filled) with dihedral + gain augmentation, its thresholds optimised on training frames
    it did not train on (never on ``validation/``, the studies' held-out set).
    For ``stardist:``.
``cellpose/models/cellpose_psc_tiny``
    A Cellpose-SAM (cellpose 4's real ``CPSAM`` class) around a tiny ViT (the tests' encoder:
    width 32, one global-attention block, 2 heads, ~0.74 M parameters instead of ~300 M),
    randomly initialised and then trained briefly from scratch with cellpose's own
    ``cellpose.train.train_seg`` on PSC training frames. It is a *smoke* model: no pretrained
    SAM weights exist offline and a few minutes of CPU training teach it only roughly where
    cells are, so its scores show the plumbing, not what Cellpose can do. cellrobust's
    ``cellpose:`` adapter rebuilds the smaller ViT from the file's tensor shapes (cellpose
    itself always builds ViT-L). Its cell probabilities stay low and its flows are poor, so it
    needs ``cellprob_threshold=-2,flow_threshold=0`` (in its spec in models.json; with
    cellpose's defaults it finds nothing). For ``cellpose:``.
``models.json``
    Every model: path, kind, the spec to give cellrobust, how it was built (frames, epochs,
    steps, sizes, seconds), SHA-256 (a folder: of its files), library versions, and a sanity
    check (pixel Jaccard and object count on one training frame none of them trained on).

Budgets (defaults) keep each training within ~6 minutes on 2 shared CPU cores. Randomness:
one ``numpy.random.Generator`` per step, spawned from ``--seed``; the global seeds the
libraries force are set from it as well (StarDist samples patches from ``np.random``, Keras and
TensorFlow initialise weights from their own seeds, cellpose's ``train_seg`` reseeds
``np.random`` every epoch and initialises ``CPSAM`` from torch's generator).

Example (from the repository root, niced beside other jobs)::

    nice -n 5 .venv/bin/python scripts/build_local_models.py --out /tmp/localmodels
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
STEPS = ("export", "stardist", "cellpose")
#: cellrobust export's package name (the zip is named after it).
EXPORT_NAME = "PSC U-Net psc-robust"
STARDIST_NAME = "stardist_psc"
CELLPOSE_NAME = "cellpose_psc_tiny"
#: Options the smoke Cellpose model needs: its cell probabilities stay below cellpose's default
#: threshold 0 and its flows fail cellpose's default flow check (0.4), so nothing would be kept.
CELLPOSE_OPTIONS = "gpu=false,cellprob_threshold=-2,flow_threshold=0"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument("--data", default=str(REPO / ".." / "shared" / "data" / "psc"),
                   help="PhC-C2DL-PSC in the DeepImageJ layout (default ../shared/data/psc "
                        "relative to the repository); only train/ is used")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch / TensorFlow threads")
    p.add_argument("--only", action="append", choices=STEPS,
                   help="build only this (repeatable; default all); models.json keeps the "
                        "entries of the others when it exists")
    p.add_argument("--overwrite", action="store_true",
                   help="replace what an earlier run of this script wrote in --out")
    g = p.add_argument_group("StarDist")
    g.add_argument("--sd-frames", type=int, default=24, help="training frames")
    g.add_argument("--sd-val-frames", type=int, default=4,
                   help="other training frames for validation loss and thresholds")
    g.add_argument("--sd-epochs", type=int, default=10)
    g.add_argument("--sd-steps", type=int, default=25, help="steps per epoch")
    g.add_argument("--sd-batch", type=int, default=8)
    g.add_argument("--sd-patch", type=int, default=128, help="training patch side (px)")
    g.add_argument("--sd-rays", type=int, default=32)
    g.add_argument("--sd-depth", type=int, default=3, help="U-Net depth")
    g.add_argument("--sd-filters", type=int, default=32, help="U-Net filters at the top")
    g.add_argument("--sd-lr", type=float, default=1e-3)
    g = p.add_argument_group("Cellpose")
    g.add_argument("--cp-frames", type=int, default=10, help="training frames")
    g.add_argument("--cp-test-frames", type=int, default=2,
                   help="other training frames for cellpose's test loss")
    g.add_argument("--cp-epochs", type=int, default=40,
                   help="epochs (train_seg warms the learning rate up over the first 10)")
    g.add_argument("--cp-images", type=int, default=12, help="images per epoch")
    g.add_argument("--cp-batch", type=int, default=4, help="256x256 crops per step")
    g.add_argument("--cp-lr", type=float, default=5e-3,
                   help="peak learning rate (1e-3 left the tiny net at its bias; a 64-wide, "
                        "2-block ViT at 3e-3 learned nothing in the same time)")
    g.add_argument("--cp-width", type=int, default=32, help="ViT embedding width")
    g.add_argument("--cp-blocks", type=int, default=1, help="ViT blocks (all global)")
    g.add_argument("--cp-heads", type=int, default=2, help="attention heads")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- helpers


def sha256(path: Path) -> str:
    from cellrobust.segmenters.protocol import file_sha256

    return file_sha256(path)


def versions(*names: str) -> dict[str, str]:
    from cellrobust.segmenters.protocol import library_versions

    return library_versions(*names)


def log(message: str) -> None:
    print(f"[build_local_models] {message}", flush=True)


def pick_frames(n_total: int, n_train: int, n_held: int, rng: np.random.Generator):
    """Disjoint frame indices (sorted): ``n_train`` to train on, ``n_held`` held out."""
    if n_train + n_held > n_total:
        raise SystemExit(f"asked for {n_train} + {n_held} frames; the training split has "
                         f"{n_total}")
    order = rng.permutation(n_total)
    return sorted(order[:n_train].tolist()), sorted(order[n_train:n_train + n_held].tolist())


def sanity(spec: str, frame) -> dict:
    """Pixel Jaccard and object count of one segmenter on one annotated frame."""
    from cellrobust.segmenters.registry import build_segmenter

    seg = build_segmenter(spec)
    labels = seg.segment(np.asarray(frame.image, np.float32)[None])[0]
    pred, true = labels > 0, np.asarray(frame.labels) > 0
    union = np.logical_or(pred, true).sum()
    return {"frame": frame.name, "pixel_jaccard": round(float((pred & true).sum() / union), 4)
            if union else None, "objects": int(labels.max()),
            "annotated_objects": int(np.asarray(frame.labels).max())}


# --------------------------------------------------------------------------- export


def build_export(args, out: Path, train) -> list[dict]:
    """``cellrobust export`` of psc-robust: TorchScript, ONNX and the bioimage.io package."""
    from cellrobust.segmenters.zoo import zoo_path

    checkpoint = zoo_path("psc-robust")
    folder = out / "export"
    if folder.exists():
        if not args.overwrite:
            raise SystemExit(f"{folder} exists; give --overwrite to rebuild it")
        shutil.rmtree(folder)
    # the package's test tensors: the top-left 512 x 512 of the first training frame
    test_image = sorted((Path(args.data) / "train" / "input").glob("*.tif"))[0]
    command = [sys.executable, "-m", "cellrobust", "export", str(checkpoint), "--out",
               str(folder), "--test-image", str(test_image), "--name", EXPORT_NAME]
    start = time.monotonic()
    log("export: cellrobust " + " ".join(command[3:]))
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("cellrobust:")]
        raise SystemExit("cellrobust export failed: "
                         + (lines[-1] if lines else done.stderr.strip().splitlines()[-1]))
    built = {"how": "cellrobust export of the shipped checkpoint psc-robust",
             "checkpoint": str(checkpoint), "checkpoint_sha256": sha256(checkpoint),
             "test_image": str(test_image), "commands": ["cellrobust " + " ".join(command[3:])],
             "seconds": round(time.monotonic() - start, 1)}
    files = {"torchscript": folder / "model.torchscript.pt", "onnx": folder / "model.onnx",
             "bioimageio": folder / (EXPORT_NAME.replace(" ", "-") + ".bioimageio.zip")}
    return [{"name": kind, "kind": kind, "path": str(path), "spec": f"{kind}:{path}",
             "sha256": sha256(path), "built": dict(built),
             "versions": versions("cellrobust", "torch", "onnx", "onnxruntime",
                                  "bioimageio.spec", "bioimageio.core")}
            for kind, path in files.items()]


# --------------------------------------------------------------------------- StarDist


def build_stardist(args, out: Path, train, rng: np.random.Generator) -> dict:
    from cellrobust.segmenters.stardist import import_torch_first

    import_torch_first()  # as the adapter does: torchvision after TensorFlow can crash
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from csbdeep.utils import normalize
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D

    idx_train, idx_val = pick_frames(len(train), args.sd_frames, args.sd_val_frames, rng)

    def prepare(i):
        frame = train[i]
        return (normalize(np.asarray(frame.image, np.float32), 1, 99.8, axis=(0, 1),
                          dtype=np.float32),  # as the stardist: adapter normalises
                fill_label_holes(np.asarray(frame.labels)))

    X, Y = zip(*(prepare(i) for i in idx_train))
    X_val, Y_val = zip(*(prepare(i) for i in idx_val))
    aug_rng = np.random.default_rng(rng.integers(2**63))

    def augment(x, y):  # dihedral transform + gain/offset jitter (StarDist's example kind)
        k, flip = int(aug_rng.integers(4)), bool(aug_rng.integers(2))
        x, y = np.rot90(x, k), np.rot90(y, k)
        if flip:
            x, y = x[:, ::-1], y[:, ::-1]
        x = x * aug_rng.uniform(0.8, 1.2) + aug_rng.uniform(-0.1, 0.1)
        return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(y)

    base = out / "stardist"
    base.mkdir(parents=True, exist_ok=True)
    folder = base / STARDIST_NAME
    if folder.exists():
        if not args.overwrite:
            raise SystemExit(f"{folder} exists; give --overwrite to rebuild it")
        shutil.rmtree(folder)
    np_seed = int(rng.integers(2**31))
    tf.keras.utils.set_random_seed(np_seed)  # python, numpy and TensorFlow global seeds
    config = Config2D(n_rays=args.sd_rays, grid=(2, 2), n_channel_in=1,
                      unet_n_depth=args.sd_depth, unet_n_filter_base=args.sd_filters,
                      train_patch_size=(args.sd_patch, args.sd_patch),
                      train_batch_size=args.sd_batch, train_epochs=args.sd_epochs,
                      train_steps_per_epoch=args.sd_steps, train_learning_rate=args.sd_lr,
                      train_tensorboard=False, use_gpu=False)
    start = time.monotonic()
    with contextlib.redirect_stdout(io.StringIO()):
        model = StarDist2D(config, name=STARDIST_NAME, basedir=str(base))
    log(f"stardist: training {args.sd_epochs} epochs x {args.sd_steps} steps x "
        f"{args.sd_batch} patches of {args.sd_patch} px on {len(X)} frames")
    history = model.train(list(X), list(Y), validation_data=(list(X_val), list(Y_val)),
                          augmenter=augment, seed=np_seed, epochs=args.sd_epochs,
                          steps_per_epoch=args.sd_steps)
    trained = time.monotonic() - start
    log("stardist: optimising thresholds on the held-out training frames")
    with contextlib.redirect_stdout(io.StringIO()):
        thresholds = model.optimize_thresholds(list(X_val), list(Y_val))
    seconds = round(time.monotonic() - start, 1)
    losses = {k: [round(float(v), 4) for v in history.history[k]]
              for k in ("loss", "val_loss") if k in history.history}
    built = {"how": "StarDist2D.train from random initialisation on PSC train/ frames, then "
                    "optimize_thresholds on other train/ frames",
             "train_frames": [train[i].name for i in idx_train],
             "threshold_frames": [train[i].name for i in idx_val],
             "epochs": args.sd_epochs, "steps_per_epoch": args.sd_steps,
             "batch_size": args.sd_batch, "patch": [args.sd_patch, args.sd_patch],
             "n_rays": args.sd_rays, "grid": [2, 2], "unet_n_depth": args.sd_depth,
             "unet_n_filter_base": args.sd_filters, "learning_rate": args.sd_lr,
             "augmentation": "rot90 x flip, gain 0.8-1.2, offset +-0.1 (normalised units)",
             "normalisation": "csbdeep normalize 1 / 99.8 percentiles per frame",
             "parameters": int(model.keras_model.count_params()),
             "thresholds": {k: float(v) for k, v in dict(thresholds).items()},
             "losses": losses, "seed": np_seed, "train_seconds": round(trained, 1),
             "seconds": seconds}
    return {"name": "stardist", "kind": "stardist", "path": str(folder),
            "spec": f"stardist:{folder}", "sha256": sha256(folder),
            "weights_sha256": sha256(folder / "weights_best.h5"), "built": built,
            "versions": versions("cellrobust", "stardist", "csbdeep", "tensorflow-cpu",
                                 "tensorflow", "keras")}


# --------------------------------------------------------------------------- Cellpose


def build_cellpose(args, out: Path, train, rng: np.random.Generator) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    import segment_anything
    from cellpose import train as cp_train
    from cellpose import vit
    from segment_anything.build_sam import _build_sam

    idx_train, idx_test = pick_frames(len(train), args.cp_frames, args.cp_test_frames, rng)
    images = [np.asarray(train[i].image, np.float32) for i in idx_train]
    labels = [np.asarray(train[i].labels) for i in idx_train]
    test_images = [np.asarray(train[i].image, np.float32) for i in idx_test]
    test_labels = [np.asarray(train[i].labels) for i in idx_test]

    encoder = {"embed_dim": args.cp_width, "depth": args.cp_blocks,
               "num_heads": args.cp_heads, "global_attn": list(range(args.cp_blocks))}
    seed = int(rng.integers(2**31))
    torch.manual_seed(seed)  # CPSAM initialises its weights from torch's global generator
    registry = segment_anything.sam_model_registry
    original = registry["vit_l"]
    registry["vit_l"] = lambda checkpoint=None: _build_sam(
        encoder["embed_dim"], encoder["depth"], encoder["num_heads"], encoder["global_attn"],
        checkpoint=checkpoint)
    try:
        net = vit.CPSAM()  # the real Cellpose-SAM class around the tiny ViT
    finally:
        registry["vit_l"] = original
    n_params = sum(p.numel() for p in net.parameters())

    base = out / "cellpose"
    base.mkdir(parents=True, exist_ok=True)
    target = base / "models" / CELLPOSE_NAME
    if target.exists():
        if not args.overwrite:
            raise SystemExit(f"{target} exists; give --overwrite to rebuild it")
        target.unlink()
    log(f"cellpose: training a {n_params:,}-parameter Cellpose-SAM for {args.cp_epochs} epochs "
        f"x {args.cp_images} images (batches of {args.cp_batch}) on {len(images)} frames")
    start = time.monotonic()
    path, train_losses, test_losses = cp_train.train_seg(
        net, train_data=images, train_labels=labels, test_data=test_images,
        test_labels=test_labels, batch_size=args.cp_batch, learning_rate=args.cp_lr,
        n_epochs=args.cp_epochs, nimg_per_epoch=args.cp_images, weight_decay=0.1,
        normalize=True, save_path=str(base), model_name=CELLPOSE_NAME, min_train_masks=1,
        save_every=10**6)
    seconds = round(time.monotonic() - start, 1)
    steps = args.cp_epochs * -(-args.cp_images // args.cp_batch)
    built = {"how": "cellpose.train.train_seg from random initialisation (no pretrained SAM "
                    "weights offline) on PSC train/ frames: a smoke model",
             "train_frames": [train[i].name for i in idx_train],
             "test_frames": [train[i].name for i in idx_test],
             "architecture": "cellpose.vit.CPSAM around segment_anything ImageEncoderViT",
             "encoder": encoder, "parameters": int(n_params), "epochs": args.cp_epochs,
             "images_per_epoch": args.cp_images, "batch_size": args.cp_batch,
             "steps": steps, "crop": [256, 256], "learning_rate": args.cp_lr,
             "weight_decay": 0.1, "rescale": False,
             "normalisation": "cellpose's, percentiles 1 / 99 per image",
             "train_loss_first_last": [round(float(train_losses[0]), 4),
                                       round(float(train_losses[-1]), 4)],
             "test_losses": {str(i): round(float(v), 4) for i, v in enumerate(test_losses)
                             if v},
             "seed": seed, "seconds": seconds}
    return {"name": "cellpose", "kind": "cellpose", "path": str(path),
            "spec": f"cellpose:{path},{CELLPOSE_OPTIONS}", "sha256": sha256(Path(path)),
            "untrained": False, "smoke_model": True, "built": built,
            "versions": versions("cellrobust", "cellpose", "segment-anything", "torch")}


# --------------------------------------------------------------------------- main


def main(argv=None) -> None:
    args = parse_args(argv)
    from cellrobust.data import open_dataset

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = Path(args.data).resolve()
    train = open_dataset(data, split="train")
    steps = args.only or list(STEPS)
    # one child generator per model (and one for the sanity frame), whatever --only says,
    # so each model is reproducible alone
    children = np.random.default_rng(args.seed).spawn(len(STEPS) + 1)
    rng, rng_sanity = dict(zip(STEPS, children)), children[-1]
    manifest_path = out / "models.json"
    previous = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    models = {m["name"]: m for m in previous.get("models", [])}
    new = []
    if "export" in steps:
        new += build_export(args, out, train)
    if "stardist" in steps:
        new.append(build_stardist(args, out, train, rng["stardist"]))
    if "cellpose" in steps:
        new.append(build_cellpose(args, out, train, rng["cellpose"]))
    for entry in new:
        entry["built"]["argv"] = sys.argv[1:]  # the invocation that built it
    models.update({entry["name"]: entry for entry in new})

    used = set()
    for entry in models.values():
        built = entry["built"]
        used |= set(built.get("train_frames", ())) | set(built.get("threshold_frames", ()))
        used |= set(built.get("test_frames", ()))
    unused = [i for i in range(len(train)) if train[i].name not in used]
    check = train[int(rng_sanity.choice(unused))] if unused else None
    for entry in new if check is not None else ():
        entry["sanity"] = sanity(f"{entry['name']}={entry['spec']}", check)
        log(f"sanity {entry['name']}: {entry['sanity']}")
    manifest = {"created_by": "scripts/build_local_models.py", "last_argv": sys.argv[1:],
                "seed": args.seed, "data": str(data), "data_split": "train",
                "note": "cellpose is a smoke model (tiny ViT, trained a few minutes from "
                        "scratch): its scores mean nothing about Cellpose",
                "models": list(models.values())}
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"wrote {manifest_path}")
    for entry in models.values():
        log(f"  --model {entry['name']}={entry['spec']}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
