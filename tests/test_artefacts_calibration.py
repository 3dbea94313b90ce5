"""The ladder-proposal rule of scripts/calibrate_ladders.py (pure function, known answers)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "calibrate_ladders.py"


@pytest.fixture(scope="module")
def calib():
    spec = importlib.util.spec_from_file_location("calibrate_ladders", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rows(values, scores):
    return [{"value": v, "jaccard": s} for v, s in zip(values, scores)]


def test_linear_curve_gives_evenly_spaced_levels(calib):
    values = list(range(11))
    curve = rows(values, [0.8 * (1 - v / 10) for v in values])  # J0 = 0.8, halves at v = 5
    ladder, reached = calib.propose(curve, 0, 0.5)
    assert reached and ladder == pytest.approx([0, 1, 2, 3, 4, 5])


def test_unreached_goal_is_flagged_and_ladder_ends_at_grid_end(calib):
    curve = rows([0, 1, 2, 3], [0.8, 0.78, 0.76, 0.75])
    ladder, reached = calib.propose(curve, 0, 0.5)
    assert not reached and ladder[5] == 3
    assert all(b > a for a, b in zip(ladder, ladder[1:]))


def test_decreasing_parameter_with_infinite_identity(calib):
    values = [math.inf, 1000, 100, 10, 1]
    curve = rows(values, [0.8, 0.8, 0.64, 0.4, 0.1])
    ladder, reached = calib.propose(curve, math.inf, 0.5)
    assert reached and ladder[0] == math.inf
    assert all(b < a for a, b in zip(ladder, ladder[1:]))
    assert 10 <= ladder[5] <= 100


def test_subsample_keeps_ends(calib):
    grid = list(range(41))
    picked = calib.subsample(grid, 12)
    assert picked[0] == 0 and picked[-1] == 40 and len(picked) == 12


def test_partly_reached_goal_spreads_remaining_levels_over_the_grid(calib):
    values = list(range(0, 21, 2))  # 0, 2, ..., 20
    scores = [0.8, 0.7, 0.62, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    ladder, reached = calib.propose(rows(values, scores), 0, 0.5)
    assert not reached and ladder[5] == 20
    assert all(b > a for a, b in zip(ladder, ladder[1:]))


def test_goal_reached_in_the_last_grid_step_stays_monotone(calib):
    values = [0, 2, 4, 6, 8]
    scores = [0.6, 0.59, 0.58, 0.55, 0.45]  # levels 1-2 reached only between 6 and 8
    ladder, reached = calib.propose(rows(values, scores), 0, 0.5)
    assert not reached
    assert all(b > a for a, b in zip(ladder, ladder[1:])), ladder
