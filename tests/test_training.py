"""Training recipes, joint augmentation (image-mask alignment), patch loading, the loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cellrobust import InputError
from cellrobust.data.sample import Sample
from cellrobust.models.checkpoint import load_checkpoint, read_checkpoint
from cellrobust.training.augment import augmented_patch, draw_params, transform_pair
from cellrobust.training.config import RECIPES, ArtefactRange, TrainConfig, recipe_config
from cellrobust.training.data import EpochSampler, PatchDataset
from cellrobust.training.history import read_history
from cellrobust.training.loop import load_run_config, train



@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread for this module's tests, restored afterwards (not for the whole run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def asymmetric_frame(shape=(96, 112), seed=0) -> tuple[np.ndarray, np.ndarray]:
    """A mask of random L-shaped blobs (no dihedral symmetry) and image = 60 + 140 * mask."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.int32)
    for k in range(10):
        y, x = rng.integers(0, shape[0] - 12), rng.integers(0, shape[1] - 12)
        mask[y:y + 10, x:x + 4] = k + 1
        mask[y + 6:y + 10, x:x + 9] = k + 1
    return (60 + 140 * (mask > 0)).astype(np.uint8), mask


def synthetic_samples(n=3, shape=(96, 112), seed=0) -> list[Sample]:
    return [Sample(*asymmetric_frame(shape, seed + i), name=f"syn/{i}") for i in range(n)]


# -- recipes ----------------------------------------------------------------------------------
def test_recipes_follow_the_studies():
    assert set(RECIPES) == {"original", "augmented", "artefact", "nma", "scale", "robust"}
    base = recipe_config("original")
    assert (base.loss, base.optimizer, base.lr, base.batch_size, base.epochs, base.patience,
            base.patch_size, base.patches_per_frame) == ("bce", "adam", 1e-3, 2, 100, 50, 256, 6)
    assert not base.dihedral and not base.affine and base.artefacts == ()
    assert recipe_config("augmented").dihedral
    art = recipe_config("artefact")
    assert art.dihedral and [(a.name, a.low, a.high) for a in art.artefacts] == [
        ("illumination", 0.0, 300.0), ("gaussian_noise", 0.0, 30.0)]
    nma = recipe_config("nma")
    assert nma.affine and nma.optimizer == "adamax" and nma.scale_range == (0.75, 1.25)
    assert nma.artefacts[0].name == "speckle"


def test_recipe_overrides_and_extra_artefacts():
    config = recipe_config("artefact", epochs=3, model={"normalisation": "minmax"},
                           extra_artefacts=["speckle:0:0.05"])
    assert config.epochs == 3 and config.model.normalisation == "minmax"
    assert config.artefacts[-1] == ArtefactRange("speckle", 0.0, 0.05)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_invalid_config_reports_every_field():
    with pytest.raises(InputError) as err:
        TrainConfig(batch_size=0, optimizer="adamm", patch_size=100, monitor="dice",
                    artefacts=(("specle", 0, 1),))
    text = str(err.value)
    for part in ("batch_size", "optimizer", "did you mean 'adam'", "patch_size", "monitor",
                 "specle"):
        assert part in text
    with pytest.raises(InputError, match="did you mean 'augmented'"):
        recipe_config("augmentd")
    with pytest.raises(InputError, match="name:low:high"):
        ArtefactRange.parse("speckle:0")


# -- augmentation: image and mask stay aligned -------------------------------------------------
def _best_dihedral(image: np.ndarray, mask: np.ndarray) -> tuple[int, bool]:
    """Which dihedral transform of ``mask`` correlates best with ``image``."""
    scores = {}
    for k in range(4):
        for flip in (False, True):
            m = np.rot90(mask > 0, k)
            m = m[:, ::-1] if flip else m
            scores[(k, flip)] = np.corrcoef(image.ravel(), m.ravel().astype(float))[0, 1]
    return max(scores, key=scores.get)


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_image_and_mask_stay_aligned_for_every_recipe(recipe):
    image, mask = asymmetric_frame((96, 112))
    # the geometry is what must stay aligned: the image artefacts (robust: sigma up to 150 and a
    # 1500 gray-level blob) would hide the correlation check, and they never touch the mask
    config = recipe_config(recipe, patch_size=48, artefacts=())
    for i in range(12):
        img, msk, params = augmented_patch(image, mask, config, name=f"p{i}", rng=i)
        assert img.shape == msk.shape == (48, 48) and img.dtype == np.float32
        if (msk > 0).mean() < 0.05:
            continue
        assert _best_dihedral(img, msk) == (0, False), (recipe, params)
        if not config.artefacts:  # without intensity artefacts: pixel-exact agreement
            agree = ((img > 130) == (msk > 0)).mean()
            assert agree > (0.97 if config.affine else 0.999999), (recipe, agree)


def test_geometric_transform_is_shared_known_answer():
    image = np.arange(64, dtype=np.float32).reshape(8, 8)
    mask = np.arange(64, dtype=np.int32).reshape(8, 8)
    params = {"y": 2, "x": 1, "k": 1, "flip": True}
    img, msk = transform_pair(image, mask, params, 4)
    expected = np.rot90(image[2:6, 1:5], 1)[:, ::-1]
    np.testing.assert_array_equal(img, expected)
    np.testing.assert_array_equal(msk, expected.astype(np.int32))


def test_affine_identity_parameters_reproduce_the_crop():
    image, mask = asymmetric_frame((64, 64))
    params = {"y": 31.5, "x": 31.5, "angle": 0.0, "scale": 1.0, "hflip": False, "k": 0,
              "flip": False}
    img, msk = transform_pair(image, mask, params, 32)
    np.testing.assert_allclose(img, image[16:48, 16:48], atol=1e-3)
    np.testing.assert_array_equal(msk, mask[16:48, 16:48])


def test_artefacts_change_the_image_only_and_draws_are_reproducible():
    image, mask = asymmetric_frame((96, 112))
    config = recipe_config("artefact", patch_size=48)
    a = augmented_patch(image, mask, config, name="x", rng=7)
    b = augmented_patch(image, mask, config, name="x", rng=7)
    plain = transform_pair(image, mask, draw_params(config, mask.shape, rng=7), 48)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], plain[1])  # the mask is the geometric crop only
    assert not np.allclose(a[0], plain[0])          # the image got illumination + noise
    assert [d["name"] for d in a[2]["artefacts"]] == ["illumination", "gaussian_noise"]


# -- patches and sampling ----------------------------------------------------------------------
def test_patches_depend_only_on_seed_epoch_index():
    config = recipe_config("augmented", patch_size=32, patches_per_frame=2, seed=3)
    ds1, ds2 = PatchDataset(synthetic_samples(), config), PatchDataset(synthetic_samples(), config)
    x1, y1 = ds1[(2, 5)]
    x2, y2 = ds2[(2, 5)]
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (1, 32, 32) and float(x1.max()) <= 1.0 + 1e-6  # max normalisation
    assert not torch.equal(ds1[(3, 5)][0], x1)
    assert len(ds1) == 6


def test_epoch_sampler_splits_an_epoch_between_ranks():
    keys = [list(EpochSampler(7, seed=0, rank=r, world=2)) for r in (0, 1)]
    assert len(keys[0]) == len(keys[1]) == 4
    assert set(i for _, i in keys[0] + keys[1]) == set(range(7))
    s = EpochSampler(7, seed=0)
    s.set_epoch(1)
    assert [i for _, i in s] != [i for _, i in EpochSampler(7, seed=0)]


# -- the loop ----------------------------------------------------------------------------------
def test_micro_training_writes_a_complete_run_folder(tmp_path):
    config = recipe_config("augmented", patch_size=32, patches_per_frame=2, epochs=2,
                           workers=0, threads=1, monitor="val_jaccard", schedule="cosine",
                           model={"width": 4})
    before = torch.get_rng_state()
    best = train(config, synthetic_samples(2), synthetic_samples(1, seed=9), run_dir=tmp_path,
                 progress=False)
    assert torch.equal(torch.get_rng_state(), before)  # global RNG untouched
    assert {p.name for p in tmp_path.iterdir()} == {"config.yaml", "best.pt", "last.pt",
                                                   "history.csv", "curves.png", "data.json"}
    rows = read_history(tmp_path / "history.csv")
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0]["steps"] == 2
    assert all(0 <= r["val_jaccard"] <= 1 and r["val_loss"] > 0 for r in rows)
    model, cfg, meta = load_checkpoint(best)
    assert cfg.width == 4 and meta["monitor"] == "val_jaccard"
    assert meta["train_config"]["recipe"] == "augmented"
    state = read_checkpoint(tmp_path / "last.pt")["train_state"]
    assert state["epoch"] == 2 and len(state["history"]) == 2 and "optimizer" in state
    text = (tmp_path / "config.yaml").read_text()  # what "auto" became, as comments
    assert "#   device: cpu" in text and "#   autocast: " in text
    assert load_run_config(tmp_path) == config  # the comments are not read back


def test_training_learns_the_synthetic_task(tmp_path):
    config = recipe_config("original", patch_size=32, patches_per_frame=8, epochs=4,
                           workers=0, threads=1, monitor="val_jaccard", lr=3e-3,
                           model={"width": 8, "depth": 2, "dropout": (0.0,) * 5})
    train(config, synthetic_samples(2), synthetic_samples(1, seed=5), run_dir=tmp_path,
          progress=False)
    rows = read_history(tmp_path / "history.csv")
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert max(r["val_jaccard"] for r in rows) > 0.5


def test_early_stopping_and_dice_bce(tmp_path):
    config = recipe_config("original", patch_size=32, patches_per_frame=1, epochs=5,
                           patience=1, lr=1e-9, loss="dice_bce", optimizer="sgd", workers=0,
                           monitor="val_loss", model={"width": 4})
    train(config, synthetic_samples(1), synthetic_samples(1), run_dir=tmp_path, progress=False)
    rows = read_history(tmp_path / "history.csv")
    assert len(rows) < 5  # lr ~ 0: no improvement -> stopped after `patience` epochs
    assert load_checkpoint(tmp_path / "best.pt")[2]["epoch"] <= len(rows)


def test_init_weights_fine_tunes_from_a_checkpoint(tmp_path):
    first = recipe_config("original", patch_size=32, patches_per_frame=1, epochs=1, workers=0,
                          model={"width": 4})
    best = train(first, synthetic_samples(1), synthetic_samples(1), run_dir=tmp_path / "a",
                 progress=False)
    start = read_checkpoint(best)["state_dict"]
    tuned = recipe_config("original", patch_size=32, patches_per_frame=1, epochs=1, workers=0,
                          model={"width": 4}, init_weights=str(best), lr=1e-12)
    best2 = train(tuned, synthetic_samples(1), synthetic_samples(1), run_dir=tmp_path / "b",
                  progress=False)
    after = read_checkpoint(best2)["state_dict"]
    assert all(torch.allclose(start[k], after[k], atol=1e-6) for k in start)
    with pytest.raises(InputError, match="different architecture"):
        train(recipe_config("original", patch_size=32, epochs=1, workers=0,
                            init_weights=str(best)),
              synthetic_samples(1), synthetic_samples(1), run_dir=tmp_path / "c", progress=False)
    rescaled = recipe_config("original", patch_size=32, patches_per_frame=1, epochs=1, workers=0,
                             model={"width": 4, "normalisation": "percentile"},
                             init_weights=str(best), lr=1e-12)
    best3 = train(rescaled, synthetic_samples(1), synthetic_samples(1), run_dir=tmp_path / "d",
                  progress=False)
    payload = read_checkpoint(best3)
    assert payload["model_config"]["normalisation"] == "percentile"
    assert all(torch.allclose(start[k], payload["state_dict"][k], atol=1e-6) for k in start)



def test_train_stage_refuses_a_wrong_init_checkpoint_before_claiming_its_folder(tmp_path):
    from cellrobust.stages import train as stage

    small = recipe_config("original", patch_size=32, patches_per_frame=1, epochs=1, workers=0,
                          model={"width": 4})
    best = train(small, synthetic_samples(1), synthetic_samples(1), run_dir=tmp_path / "a",
                 progress=False)
    wider = recipe_config("original", patch_size=32, epochs=1, workers=0, model={"width": 8},
                          init_weights=str(best))
    out = tmp_path / "never"
    with pytest.raises(InputError, match="init_weights: .* different architecture"):
        stage.run(stage.TrainStageConfig(train=wider, out=out), progress=False)
    assert not out.exists()

def test_artefact_probability_parses_validates_and_round_trips():
    art = ArtefactRange.parse("gaussian_noise:0:100:0.5")
    assert (art.name, art.low, art.high, art.p) == ("gaussian_noise", 0.0, 100.0, 0.5)
    config = recipe_config("artefact", artefacts=(art, ArtefactRange("illumination", 0, 300)))
    data = config.to_dict()
    assert data["artefacts"] == [["gaussian_noise", 0.0, 100.0, 0.5],
                                 ["illumination", 0, 300]]  # p = 1 is not written
    assert TrainConfig.from_dict(data) == config
    with pytest.raises(InputError, match="p expects a probability in"):
        recipe_config("artefact", artefacts=(ArtefactRange("gaussian_noise", 0, 10, 0.0),))
    with pytest.raises(InputError, match="name:low:high:p"):
        ArtefactRange.parse("gaussian_noise:0:100:0.5:1")


def test_artefact_probability_leaves_that_share_of_patches_untouched():
    from cellrobust.training.augment import apply_artefacts

    image = np.full((16, 16), 100.0, np.float32)
    half = recipe_config("artefact", artefacts=(ArtefactRange("gaussian_noise", 50, 60, 0.3),))
    rng = np.random.default_rng(0)
    drawn = [len(apply_artefacts(image, half, name="x", rng=rng)[1]) for _ in range(400)]
    assert 0.24 < np.mean(drawn) < 0.36  # binomial(400, 0.3): sd 0.023
    always = recipe_config("artefact", artefacts=(ArtefactRange("gaussian_noise", 50, 60),))
    a = apply_artefacts(image, always, name="x", rng=np.random.default_rng(1))
    b = apply_artefacts(image, always, name="x", rng=np.random.default_rng(1))
    first = np.random.default_rng(1).uniform(50, 60)  # p = 1 draws no coin: stream unchanged
    assert a[1][0]["value"] == first and np.array_equal(a[0], b[0])
