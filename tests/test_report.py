"""Report: figures from a table, the self-contained HTML (checked in headless Chromium),
summary.md and ``cellrobust report``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cellrobust import DataError
from cellrobust.cli import main
from cellrobust.report import ReportOptions, build_report, plots

sys.path.insert(0, str(Path(__file__).parent))
from _synth_table import synthetic_table


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    synthetic_table(n_images=6).to_parquet(folder / "results.parquet")
    path = build_report(folder, ReportOptions(n_boot=100))
    return folder, path


def test_outputs_written(built):
    folder, path = built
    assert path == folder / "report.html"
    for name in ("scores.csv", "curves.csv", "paired.csv", "summary.md", "trusted.csv"):
        assert (folder / name).is_file(), name
    for stem in ("curves_gaussian", "curves_illumination", "ap_vs_iou", "heatmap_rpc",
                 "trusted_range"):
        assert (folder / "figures" / f"{stem}.png").stat().st_size > 10_000
        assert (folder / "figures" / f"{stem}.svg").read_text().lstrip().startswith("<?xml")
    scores = pd.read_csv(folder / "scores.csv")
    assert {"clean", "mpc", "rpc", "auc", "ce", "rel_ce", "clean_lo", "rpc_hi", "note"} <= set(
        scores.columns)
    trusted = pd.read_csv(folder / "trusted.csv").set_index(["segmenter", "artefact"])
    # constructed jaccard 1 - rate * s / 5 at 10 s gray levels: 90 % kept to 5 / rate
    assert trusted.loc[("artefact", "gaussian"), "trusted"] == pytest.approx(5 / 0.3, rel=0.3)
    paired = pd.read_csv(folder / "paired.csv")  # recommended model against every other
    assert set(zip(paired["a"], paired["b"])) == {("artefact", "original"),
                                                  ("artefact", "dog_otsu")}


def test_html_is_self_contained(built):
    _, path = built
    html = path.read_text()
    srcs = re.findall(r"<img[^>]*src='([^']*)'", html)
    assert len(srcs) >= 5 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "<script" not in html and "http://" not in html and "https://" not in html
    for term in ("TP/(TP+FP+FN)", "micro", "macro", "SEG", "rPC", "relative CE"):
        assert term in html, term
    assert "significantly better" in html  # the constructed main effect is found
    first = html.index("id='verdict'")
    assert first < html.index("id='trusted'") < html.index("id='findings'")
    assert "Use artefact-trained" in html and "gray levels" in html[first:]
    assert "best ... is artefact " not in html and "27.000" not in html
    for name in ("paired.csv", "summary.md", "trusted.csv", "scores.csv"):
        assert f"<code>{name}</code>" in html, name


def test_summary_md(built):
    folder, _ = built
    text = (folder / "summary.md").read_text()
    assert "| model | artefact |" in text and "artefact-trained minus original" in text
    assert text.index("## Verdict") < text.index("## Trusted range") < text.index("## Findings")


def test_true_count_line_is_cells_per_image(built):
    folder, _ = built
    table = pd.read_parquet(folder / "results.parquet")
    fig = plots.figure_artefact_panels(table, "gaussian", n_boot=0)
    ax = fig.axes[1]
    line = next(l for l in ax.get_lines() if l.get_label() == "true count")
    assert set(line.get_ydata()) == {10.0}  # 10 cells per constructed image, 3 segmenters


def test_colours_are_consistent():
    a = plots.segmenter_colours(["original", "artefact", "dog_otsu", "mine"])
    b = plots.segmenter_colours(["mine", "dog_otsu"])
    assert a["dog_otsu"] == b["dog_otsu"] and a["mine"] == b["mine"]
    assert len(set(a.values())) == 4


def test_report_cli_rebuilds_without_recomputing(built, tmp_path, capsys):
    small = synthetic_table(n_images=3, levels=2, artefacts=("gaussian",))
    small.to_parquet(tmp_path / "results.parquet")
    assert main(["report", str(tmp_path), "--n-boot", "50", "--metric", "recall"]) == 0
    assert "report:" in capsys.readouterr().out
    assert "recall" in (tmp_path / "scores.csv").read_text()
    assert main(["report", str(tmp_path / "missing")]) == 1
    assert main(["report", str(tmp_path), "--metric", "jacard"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'jaccard'" in err
    with pytest.raises(DataError):
        build_report(tmp_path / "missing")


CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const bad = imgs.filter(i => !(i.complete && i.naturalWidth > 0));
  document.body.setAttribute('data-images', imgs.length + ':' + bad.length);
});
</script></body>"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def _run_chromium(args, tmp_path, timeout=90):
    exe = _chromium()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--no-first-run", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "HOME": str(tmp_path)})


def test_renders_in_headless_chromium(built, tmp_path):
    if _chromium() is None:
        pytest.skip("chromium not installed (apt-get install -y chromium) - browser check skipped")
    _, path = built
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text().replace("</body>", CHECK))
    dom = _run_chromium(["--virtual-time-budget=5000", "--dump-dom", probe.as_uri()], tmp_path)
    match = re.search(r'data-images="(\d+):(\d+)"', dom.stdout)
    assert match, dom.stderr[-2000:]
    assert int(match.group(1)) >= 5 and match.group(2) == "0", "images failed to load"
    console = [l for l in dom.stderr.splitlines() if "CONSOLE" in l and "probe.html" in l]
    assert not console, console
    shot = tmp_path / "report.png"
    res = _run_chromium([f"--screenshot={shot}", "--window-size=1280,2400", path.as_uri()],
                        tmp_path)
    assert shot.is_file() and shot.stat().st_size > 50_000, res.stderr[-2000:]
    keep = os.environ.get("CELLROBUST_KEEP_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)


def test_report_cli_takes_the_study_robust_model_from_study_json(tmp_path, capsys):
    from cellrobust._io import write_json
    from cellrobust.stages.study import describe, resolve_study

    small = synthetic_table(n_images=3, levels=2, artefacts=("gaussian",))
    small["segmenter"] = small["segmenter"].replace({"artefact": "nma"})
    small.to_parquet(tmp_path / "results.parquet")
    write_json(tmp_path / "study.json", describe(resolve_study("nma")))
    assert main(["report", str(tmp_path), "--n-boot", "20"]) == 0
    paired = pd.read_csv(tmp_path / "paired.csv")
    assert ("nma", "original") in set(zip(paired["a"], paired["b"]))
    assert "robustness study (nma)" in (tmp_path / "report.html").read_text()


def test_findings_name_best_under_corruption_not_only_the_steadiest():
    # a segmenter poor on clean images can have the best rPC while being worse throughout
    from cellrobust.report.build import findings

    scores = pd.DataFrame({"segmenter": ["unet", "otsu"], "artefact": ["noise", "noise"],
                           "clean": [0.80, 0.50], "mpc": [0.60, 0.48], "rpc": [0.75, 0.96]})
    lines = findings(synthetic_table(n_images=2), scores, ReportOptions(n_boot=10))
    assert lines[0] == ("noise: best jaccard under corruption (mPC) is unet (mPC 0.60, clean "
                        "0.80, rPC 0.75); smallest relative loss (rPC) is Otsu (rPC 0.96, but "
                        "clean 0.50, mPC 0.48).")
    same = findings(synthetic_table(n_images=2), scores.iloc[:1], ReportOptions(n_boot=10))
    assert same[0].endswith("rPC 0.75).") and "smallest" not in same[0]


def test_heatmap_of_many_artefacts_is_portrait():
    arts = [f"art{i:02d}" for i in range(16)] + ["mean"]
    segs = ["original", "artefact", "dog_otsu"]
    scores = pd.DataFrame([dict(segmenter=s, artefact=a, metric="jaccard", rpc=0.5 + 0.01 * i)
                           for s in segs for i, a in enumerate(arts)])
    fig = plots.figure_heatmap(scores, "rpc")
    width, height = fig.get_size_inches()
    ax = fig.axes[0]
    assert height > width
    assert [t.get_text() for t in ax.get_yticklabels()] == arts  # mean last, down the side
    shown = [plots.display_name(s) for s in sorted(segs)]
    assert [t.get_text() for t in ax.get_xticklabels()] == shown
    few = plots.figure_heatmap(scores[scores["artefact"].isin(["art00", "art01", "mean"])])
    assert [t.get_text() for t in few.axes[0].get_yticklabels()] == shown


def test_heatmap_turns_at_seven_artefacts_not_counting_the_mean():
    segs = ["original", "artefact", "dog_otsu"]

    def labels(n, mean=True):
        arts = [f"art{i}" for i in range(n)] + (["mean"] if mean else [])
        scores = pd.DataFrame([dict(segmenter=s, artefact=a, metric="jaccard", rpc=0.5)
                               for s in segs for a in arts])
        return [t.get_text() for t in plots.figure_heatmap(scores).axes[0].get_yticklabels()]

    assert labels(6) == [plots.display_name(s) for s in sorted(segs)]
    assert labels(7)[:7] == [f"art{i}" for i in range(7)]
    assert labels(7, mean=False) == [f"art{i}" for i in range(7)]


def test_clean_reference_is_one_image_and_the_minmax_level_0_is_its_own_row(tmp_path):
    """Issue #15: every artefact's clean score is the raw-image row ('none'), identical across
    artefacts; the studies' min-max level 0 (here 0.2 lower) is reported apart, labelled."""
    table = synthetic_table(n_images=6, levels=2, artefacts=("gaussian_noise", "zoom"),
                            noise=0.0)
    raw = table[(table["artefact"] == "zoom") & (table["severity_index"] == 0)].copy()
    raw["artefact"], raw["unit"] = "none", "none"
    noise0 = (table["artefact"] == "gaussian_noise") & (table["severity_index"] == 0)
    table.loc[noise0, "tp_px"] = 800  # the rescale alone costs 0.2 Jaccard
    table.loc[noise0, "fn_px"] = 200
    folder = tmp_path / "res"
    folder.mkdir()
    pd.concat([raw, table], ignore_index=True).to_parquet(folder / "results.parquet")
    build_report(folder, ReportOptions(n_boot=20))
    scores = pd.read_csv(folder / "scores.csv")
    per_model = scores[scores["artefact"] != "mean"].groupby("segmenter")["clean"]
    assert (per_model.nunique() == 1).all()
    assert scores["clean"].max() == pytest.approx(1.0)  # the raw rows, not the rescaled ones
    summary = (folder / "summary.md").read_text()
    section = summary.split("### Clean reference")[1].split("## Figures")[0]
    assert "min-max rescaled (the studies' level 0)" in section
    assert section.count("-0.200") == len(scores["segmenter"].unique())
    assert "| gaussian_noise |" in section  # zoom's level 0 is the raw image: not listed
    assert "Clean reference: raw images vs the studies" in (folder / "report.html").read_text()


def test_models_view_lists_every_model_with_its_provenance():
    from cellrobust.report.summary import markdown_table
    from cellrobust.report.tables import models_view

    run = {"models": {
        "cp": {"spec": "cellpose:m/cellpose_x,flow_threshold=0", "kind": "cellpose",
               "target": "m/cellpose_x", "sha256": "ab" * 32,
               "encoder": {"embed_dim": 32, "depth": 1}, "options": {"flow_threshold": 0},
               "versions": {"cellrobust": "0.1.0", "cellpose": "4.2.1.1"}},
        "dog_otsu": {"kind": "baseline", "target": "dog_otsu", "options": {"sigma_low": 4.7}},
        "sd": {"kind": "stardist", "target": "m/sd", "sha256": "cd" * 32,
               "thresholds": {"prob": 0.758436, "nms": 0.3}, "n_rays": 32}}}
    view = models_view(run)
    assert list(view["model"]) == ["cp", "DoG + Otsu", "sd"]
    cp = view.iloc[0]
    assert cp["SHA-256"] == "ab" * 6 and cp["kind"] == "cellpose"
    assert cp["options"] == "flow_threshold=0" and "cellrobust" not in cp["versions"]
    assert cp["details"] == "encoder=(embed_dim=32, depth=1)"
    assert view.iloc[1]["SHA-256"] == "—"
    assert view.iloc[2]["details"] == "n_rays=32, thresholds=(prob=0.7584, nms=0.3)"
    assert "| cp | cellpose |" in markdown_table(view)
    assert models_view({}) is None and models_view(None) is None


def test_a_bare_sweep_records_and_reports_each_models_provenance(tmp_path):
    # a sweep (no study.json) writes every segmenter's kind, file SHA-256 and versions into its
    # config.json, and its report's Models table shows them
    import torch

    from cellrobust.models.checkpoint import save_checkpoint
    from cellrobust.models.unet import UNetConfig, build_unet
    from cellrobust.report import ReportOptions, build_report
    from cellrobust.segmenters import file_sha256
    from cellrobust.stages.sweep import SweepStageConfig
    from cellrobust.stages.sweep import run as run_sweep_stage
    from cellrobust.sweep import SweepConfig

    config = UNetConfig(width=4, depth=2)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = build_unet(config)
    ckpt = save_checkpoint(tmp_path / "mine.pt", net, config, meta={"epoch": 1})
    sweep = SweepConfig(segmenters=(f"mine={ckpt}", "otsu"), artefacts=("gaussian_noise",),
                        severities={"gaussian_noise": (0.0, 20.0)}, seed=0, patch_size=64)
    out = tmp_path / "sw"
    run_sweep_stage(SweepStageConfig(out=out, sweep=sweep, patches=2, patch_size=64))
    recorded = json.loads((out / "config.json").read_text())["segmenters"]
    assert recorded["mine"]["sha256"] == file_sha256(ckpt) and recorded["mine"]["kind"] == "unet"
    assert recorded["otsu"]["kind"] == "baseline"
    assert json.loads((out / "sweep.json").read_text())["models"]["mine"] == file_sha256(ckpt)
    build_report(out, ReportOptions(n_boot=20))
    summary = (out / "summary.md").read_text()
    assert "## Models" in summary
    assert f"| mine | unet | {ckpt} | {file_sha256(ckpt)[:12]} |" in summary
    assert "| Otsu | baseline | otsu |" in summary


def test_paired_mpc_known_answer_per_artefact_and_overall():
    # Jaccard at level s is 1 - rate * s / 5 (no false positives): mPC over levels 1-5 is
    # 1 - 0.6 * rate, so artefact (rate 0.3) minus original (rate 0.9) is +0.36 everywhere
    from _synth_table import synthetic_table

    from cellrobust.report.strategies import paired_mpc

    table = synthetic_table(noise=0.0)
    out = paired_mpc(table, "artefact", "original", n_boot=50)
    assert list(out["artefact"]) == ["gaussian", "illumination", "mean"]
    np.testing.assert_allclose(out["mpc_a"], 0.82)
    np.testing.assert_allclose(out["mpc_b"], 0.46)
    np.testing.assert_allclose(out[["diff", "lo", "hi"]].to_numpy(), 0.36)
    assert out["significant"].all() and (out["n_frames"] == 8).all()
    swapped = paired_mpc(table, "original", "artefact", n_boot=50)
    np.testing.assert_allclose(swapped["diff"], -0.36)
    noisy = paired_mpc(synthetic_table(noise=0.05), "artefact", "original", n_boot=200)
    assert (noisy["lo"] < noisy["diff"]).all() and (noisy["diff"] < noisy["hi"]).all()
    assert paired_mpc(table, "artefact", "nobody", n_boot=10).empty


def test_report_states_the_paired_mpc_of_the_robust_and_baseline_models(tmp_path):
    from _synth_table import synthetic_table

    from cellrobust.report import ReportOptions, build_report

    synthetic_table(noise=0.0).to_parquet(tmp_path / "results.parquet")
    build_report(tmp_path, ReportOptions(n_boot=50, robust="artefact", baseline="original"))
    assert ("mPC (severities >= 1), artefact-trained minus original, paired 95% CI over "
            "frames: gaussian +0.360 [+0.360, +0.360]; illumination +0.360 [+0.360, +0.360]; "
            "mean over artefacts +0.360 [+0.360, +0.360] - significantly higher.") in \
        (tmp_path / "summary.md").read_text()
