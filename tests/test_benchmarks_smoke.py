"""The benchmark harness cannot rot: every suite runs in --smoke mode, our side must succeed.

Peers run only where their ``.venv-peers-*`` environment is installed (``python -m benchmarks
setup``); the fast test runs our side alone (``--no-peers``) and checks that each peer row says
why it was skipped. The harness's A/B arithmetic is tested with two sides in the project's own
environment, so it is exercised even where no peer is installed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `benchmarks` lives outside the package, at the repo root

from benchmarks import SUITES, peers
from benchmarks.harness import Comparison, Side, compare
from benchmarks.suites.metrics import make_pair
from benchmarks.suites.study import fit_exponent
from benchmarks.suites.unet import N_PARAMS, forward_flops


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "benchmarks", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def smoke_doc(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    proc = _run(["run", "--smoke", "--no-peers", "--out", str(out)], timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "latest.json").read_text())
    doc["_markdown"] = (out / "latest.md").read_text()
    return doc


def test_every_suite_runs_our_side(smoke_doc):
    assert [s["suite"] for s in smoke_doc["suites"]] == list(SUITES)
    for suite in smoke_doc["suites"]:
        assert not suite.get("error"), (suite["suite"], suite.get("traceback"))
        assert suite["rows"], suite["suite"]
        for row in suite["rows"]:
            ours = row["ours"]
            assert "error" not in ours and "skipped" not in ours, (row["name"], ours)
            assert len(ours["throughput"]) == smoke_doc["rounds"]
            assert all(t > 0 and math.isfinite(t) for t in ours["throughput"])


def test_peers_are_skipped_with_a_reason(smoke_doc):
    peer_rows = [p for s in smoke_doc["suites"] for r in s["rows"] for p in r["peers"]]
    assert peer_rows, "the comparison suites must name their peers"
    for peer in peer_rows:
        assert "--no-peers" in peer["skipped"]
        assert not peer["throughput"] and not peer["ratio"]


def test_results_say_where_and_when(smoke_doc):
    m = smoke_doc["machine"]
    assert m["cpu_model"] and m["logical_cores"] >= 1 and m["date_utc"]
    md = smoke_doc["_markdown"]
    assert "SMOKE sizes" in md and m["cpu_model"] in md
    for suite in SUITES:
        assert f"## {suite}:" in md
    assert "not run: peers disabled" in md


SPIN = "benchmarks._selftest:spin"


def test_ab_harness_ratios_from_interleaved_rounds(tmp_path):
    """Two sides in our own environment: rounds interleave, ratios are pairwise, values match."""
    cmp = Comparison("spin vs spin", "sums/s", Side("a", SPIN, {"reps": 50}),
                     (Side("b", SPIN, {"reps": 100}), Side("c", SPIN, {"offset": 1.0})),
                     goal=1.0, check_values=True)
    row = compare(cmp, rounds=3, log_dir=tmp_path)
    a, b, _ = row["ours"], *row["peers"]
    assert len(a["throughput"]) == len(b["throughput"]) == len(b["ratios"]) == 3
    expected = [x / y for x, y in zip(a["throughput"], b["throughput"])]
    assert b["ratios"] == pytest.approx(expected)
    assert b["ratio"]["min"] <= b["ratio"]["median"] <= b["ratio"]["max"]
    assert row["values_identical"] is False  # c's values are offset by 1
    row = compare(Comparison("same", "sums/s", Side("a", SPIN), (Side("b", SPIN),),
                             check_values=True), rounds=1, log_dir=tmp_path)
    assert row["values_identical"] is True


def test_missing_peer_environment_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(peers, "peer_python", lambda name: None)
    cmp = Comparison("x", "sums/s", Side("ours", SPIN),
                     (Side("peer", SPIN, {}, "nonexistent"),))
    row = compare(cmp, rounds=2, log_dir=tmp_path)
    assert len(row["ours"]["throughput"]) == 2
    assert "python -m benchmarks setup nonexistent" in row["peers"][0]["skipped"]


def test_failing_side_is_recorded_not_raised(tmp_path):
    cmp = Comparison("x", "u", Side("broken", "benchmarks._selftest:no_such_factory"), ())
    row = compare(cmp, rounds=1, log_dir=tmp_path)
    assert "AttributeError" in row["ours"]["error"]


def test_unet_flop_count_known_answer():
    # forward FLOPs of the DeepImageJ U-Net on 256x256, from the layer list by hand
    assert forward_flops(256, 256) == pytest.approx(4.601151488e9)
    assert forward_flops(512, 512) == pytest.approx(4 * forward_flops(256, 256))
    assert N_PARAMS == 481_745


def test_metrics_workload_is_sequential_and_paired():
    import numpy as np
    rng = np.random.default_rng(0)
    true, pred = make_pair((128, 128), 20, 6.0, rng)
    for lab in (true, pred):
        ids = np.unique(lab)
        assert ids[0] == 0 and np.array_equal(ids, np.arange(len(ids)))  # Cellpose needs this
    assert len(np.unique(true)) > 10


def test_growth_exponent_fit():
    assert fit_exponent([1, 2, 4, 8], [3, 6, 12, 24]) == pytest.approx(1.0)
    assert fit_exponent([1, 2, 4], [1, 4, 16]) == pytest.approx(2.0)


def test_cli_rejects_unknown_suite():
    proc = _run(["run", "nope"], timeout=60)
    assert proc.returncode == 2 and "unknown suite" in proc.stderr


def test_convergence_verdict_against_the_seeds_spread():
    from benchmarks.suites.convergence import jaccard_lines

    def row(ours, keras):
        return {"name": "fit", "ours": {"label": "ours", "values": ours},
                "peers": [{"label": "keras", "values": keras}]}

    equal = jaccard_lines([row([0.70, 0.74, 0.72], [0.71, 0.73, 0.72])])
    assert equal[-1].endswith("equal within the seeds' spread") and "+0.000" in equal[-1]
    lower = jaccard_lines([row([0.60, 0.61, 0.60], [0.70, 0.71, 0.70])])
    assert lower[-1].endswith("ours LOWER") and "-0.100" in lower[-1]
    assert "ours higher" in jaccard_lines([row([0.8, 0.8], [0.7, 0.71])])[-1]
    assert len(jaccard_lines([row([0.7], None)])) == 1  # a skipped peer: no difference line


def test_convergence_runs_are_seeded(tmp_path):
    from benchmarks.suites.convergence import ours_fit, write_patches

    data = tmp_path / "p.npz"
    assert write_patches(data, size=32, batch=2, steps=3, val=2) == "synthetic cell images"
    a, b = ours_fit(data=str(data), batch=2, threads=1), ours_fit(data=str(data), batch=2,
                                                                   threads=1)
    assert a.step() == {"units": 3} and b.step() == {"units": 3}
    a.step()
    assert a.values[0] == b.values[0]  # round 0 of two benches: the same seed, the same run
    assert len(a.values) == 2 and all(0.0 <= v <= 1.0 for v in a.values)


def test_sweep_tables_differ_only_where_they_do(tmp_path):
    import pandas as pd

    from benchmarks.sweep_vs_commit import table_differences

    base = pd.DataFrame({"segmenter": ["u", "u"], "artefact": ["noise", "noise"],
                         "severity_index": [0, 1], "sample": ["s0", "s0"], "tp_px": [5, 6],
                         "fp_px": [1, float("nan")], "runtime_s": [0.1, 0.2]})
    for name, frame in (("a", base), ("b", base.assign(runtime_s=[9.0, 9.0])),
                        ("c", base.assign(tp_px=[5, 7]))):
        (tmp_path / name).mkdir()
        frame.to_csv(tmp_path / name / "results.csv", index=False)
    same = table_differences(tmp_path / "a", tmp_path / "b")
    assert same == {"rows": 2, "unmatched_rows": 0, "differing_columns": {}}
    assert table_differences(tmp_path / "a", tmp_path / "c")["differing_columns"] == {"tp_px": 1}


def test_sweep_runs_record_the_workers_and_malloc_policy_their_config_names(tmp_path):
    import json

    from benchmarks.sweep_vs_commit import _settings

    (tmp_path / "config.json").write_text(json.dumps(
        {"worker_processes": 2, "allocator": {"policy": "retain"}, "other": 1}))
    assert _settings(tmp_path) == {"worker_processes": 2, "allocator": {"policy": "retain"}}
    (tmp_path / "config.json").write_text(json.dumps({"stage": "sweep"}))  # an older checkout
    assert _settings(tmp_path) == {}
    assert _settings(tmp_path / "missing") == {}
