"""Expected validation performance (`hf_tasks.study.expected_max`): both estimators equal brute force over every
n-subset (without replacement) and every n-tuple (with replacement) of small searches, in both directions."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest

from hf_tasks.study.expected_max import (
    COLUMNS,
    curve,
    expected_max_unbiased,
    expected_max_with_replacement,
    stays_ahead_from,
    write_curves,
)
from hf_tasks.study import main
from hf_tasks.trackers import TRACKIO_PROJECT_VARIABLE
from tests.study_fakes import search_files, search_rows

SEARCHES = [[0.71], [0.5, 0.9], [0.62, 0.55, 0.62, 0.80, 0.41], [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]]


def brute_force(values, n: int, pick, replacement: bool) -> float:
    draws = itertools.product(values, repeat=n) if replacement else itertools.combinations(values, n)
    return float(np.mean([pick(draw) for draw in draws]))


@pytest.mark.parametrize("values", SEARCHES)
@pytest.mark.parametrize("maximize", [True, False])
def test_both_estimators_equal_the_mean_best_over_every_draw(values, maximize):
    pick = max if maximize else min
    budgets = range(1, len(values) + 1)
    assert expected_max_unbiased(values, maximize) == pytest.approx(
        [brute_force(values, n, pick, replacement=False) for n in budgets], rel=1e-12)
    assert expected_max_with_replacement(values, maximize) == pytest.approx(
        [brute_force(values, n, pick, replacement=True) for n in budgets], rel=1e-12)


def test_the_curves_start_at_the_mean_end_at_the_best_and_never_fall():
    values = [0.62, 0.55, 0.62, 0.80, 0.41, 0.77, 0.69, 0.58]
    unbiased = expected_max_unbiased(values)
    assert unbiased[0] == pytest.approx(np.mean(values)) and unbiased[-1] == pytest.approx(max(values))
    assert np.all(np.diff(unbiased) >= -1e-12)
    # With replacement the same trial may be drawn again, so it stays below the best at n = N.
    assert expected_max_with_replacement(values)[-1] < max(values)


def test_a_loss_curve_falls_and_its_band_holds_it():
    losses = [0.9, 0.52, 0.61, 0.48, 0.75, 0.66]
    result = curve(losses, "tiny", "eval_loss", maximize=False, resamples=200)
    assert result.unbiased[-1] == pytest.approx(min(losses)) and np.all(np.diff(result.unbiased) <= 1e-12)
    assert np.all(result.band_low <= result.unbiased + 1e-12) and np.all(result.unbiased <= result.band_high + 1e-12)


def test_one_search_writes_its_csv_and_plot_and_several_say_from_which_budget_one_stays_ahead(tmp_path):
    single = curve([0.5, 0.7, 0.6], "a", "eval_accuracy", resamples=100)
    write_curves([single], tmp_path / "one")
    with (tmp_path / "one" / "search_expected_max.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS and [int(row["n"]) for row in rows] == [1, 2, 3]
    assert float(rows[0]["expected_max_unbiased"]) == pytest.approx(0.6)
    assert (tmp_path / "one" / "search_expected_max.png").stat().st_size > 0

    # Steady config: always 0.7. Lucky config: mostly poor trials but a best of 0.9, so it wins only with budget.
    steady = curve([0.7] * 6, "steady", "eval_accuracy", resamples=100)
    lucky = curve([0.3, 0.4, 0.5, 0.6, 0.65, 0.9], "lucky", "eval_accuracy", resamples=100)
    start = stays_ahead_from(lucky, steady)
    assert start is not None and lucky.unbiased[start - 1] >= 0.7 > lucky.unbiased[start - 2]
    assert stays_ahead_from(steady, lucky) is None
    write_curves([steady, lucky], tmp_path / "two")
    table = (tmp_path / "two" / "search_expected_max.md").read_text(encoding="utf-8")
    assert f"| lucky | steady | {start} | 6 |" in table and "| steady | lucky |" not in table
    assert {path.name for path in (tmp_path / "two").iterdir()} == {
        "search_expected_max-steady.csv", "search_expected_max-lucky.csv", "search_expected_max.png",
        "search_expected_max.md"}


def test_a_search_writes_its_expected_max_curve_from_its_finished_trials(tmp_path):
    config, space = search_files(tmp_path)
    output_dir = tmp_path / "search"
    assert main([str(config), "--output_dir", str(output_dir), "--search", str(space), "--trials", "4",
                 "--workers", "1"]) == 0
    scores = [float(row["eval_accuracy"]) for row in search_rows(output_dir)]
    with (output_dir / "search_expected_max.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [float(row["expected_max_unbiased"]) for row in rows] == pytest.approx(
        expected_max_unbiased(scores).tolist())
    assert float(rows[-1]["expected_max_unbiased"]) == pytest.approx(max(scores))
    assert (output_dir / "search_expected_max.png").stat().st_size > 0


def test_several_configs_search_one_by_one_and_share_one_plot(tmp_path, monkeypatch):
    for variable in ("TRACKIO_DIR", TRACKIO_PROJECT_VARIABLE):  # the study sets them; restored after
        monkeypatch.setenv(variable, "")
    config, space = search_files(tmp_path)
    other = tmp_path / "other.yaml"
    other.write_text(config.read_text())
    output_dir = tmp_path / "searches"
    assert main([str(config), str(other), "--output_dir", str(output_dir), "--search", str(space), "--trials", "2",
                 "--workers", "1"]) == 0
    for group in ("trial_recipe-trial", "trial_recipe-other"):
        assert [row["state"] for row in search_rows(output_dir / group)] == ["COMPLETE"] * 2
        assert (output_dir / f"search_expected_max-{group}.csv").is_file()
    table = (output_dir / "search_expected_max.md").read_text(encoding="utf-8")
    assert "| trial_recipe-trial | trial_recipe-other |" in table or "| trial_recipe-other | trial_recipe-trial |" \
        in table
    assert (output_dir / "search_expected_max.png").stat().st_size > 0
