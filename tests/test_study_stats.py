"""The study's statistics: intervals, paired bootstrap, McNemar, Holm, on outcomes whose answers are known."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest

from hf_tasks.errors import BadInputError
from hf_tasks.metrics.classification import classification_metrics
from hf_tasks.metrics.squad import squad_v2_scores
from hf_tasks.study import compare as compare_cli
from hf_tasks.study.runs import Run
from hf_tasks.study.stats import (
    Outcomes,
    adjust,
    compare,
    config_interval,
    holm,
    pair_by_seed,
    read_outcomes,
    scorer,
)
from hf_tasks.study.table import write_table

CLASSES = np.array(["entailment", "contradiction", "neutral"], dtype=object)


def outcomes(gold, predicted, name="run") -> Outcomes:
    ids = np.array([f"q{index}" for index in range(len(gold))], dtype=object)
    return Outcomes(Path(name) / "test_predictions.csv", ids, np.asarray(gold, dtype=object),
                    np.asarray(predicted, dtype=object))


def right_and_wrong(baseline_right, config_right, size=200, seed=0):
    """Gold and the two runs' predictions where each run is right exactly on the given example positions."""
    rng = np.random.default_rng(seed)
    gold = rng.choice(CLASSES, size)
    wrong = np.array([CLASSES[(list(CLASSES).index(label) + 1) % 3] for label in gold], dtype=object)
    return (gold, np.where(np.isin(np.arange(size), baseline_right), gold, wrong),
            np.where(np.isin(np.arange(size), config_right), gold, wrong))


def write_run(run_dir: Path, gold, predicted, ids=None, prefix="test") -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    ids = ids if ids is not None else [str(index) for index in range(len(gold))]
    with (run_dir / f"{prefix}_predictions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "example_id", "gold_label", "predicted_label"])
        writer.writerows([f"text {example}", example, label, guess]
                         for example, label, guess in zip(ids, gold, predicted))
    accuracy = float(np.mean(np.asarray(gold) == np.asarray(predicted)))
    (run_dir / "results.json").write_text(json.dumps({f"{prefix}_accuracy": accuracy, "train_runtime": 1.0}))
    return run_dir


def test_weights_of_ones_give_the_metrics_the_task_reports():
    rng = np.random.default_rng(1)
    gold, predicted = rng.integers(0, 3, 300), rng.integers(0, 3, 300)
    predicted[:150] = gold[:150]
    reported = classification_metrics(gold, predicted, list(CLASSES))
    run = outcomes(CLASSES[gold], CLASSES[predicted])
    for name in ("accuracy", "macro_f1", "weighted_f1", "uar"):
        assert scorer(run, name)(np.ones((1, 300)))[0] == pytest.approx(reported[name], rel=1e-12)
    answers = {"a": "tehran", "b": "", "c": "the big city", "d": "x"}
    references = {"a": ["Tehran"], "b": [], "c": ["big city"], "d": []}
    official = squad_v2_scores(answers, references)
    per_question = Outcomes(Path("qa/test_question_scores.csv"), np.array(list(answers), dtype=object),
                            scores={"exact": np.array([1.0, 1.0, 1.0, 0.0]), "f1": np.array([1.0, 1.0, 1.0, 0.0])})
    assert scorer(per_question, "exact")(np.ones((1, 4)))[0] == pytest.approx(official["exact"])


def test_identical_predictions_differ_by_zero_with_p_one():
    gold, predicted, _ = right_and_wrong(range(0, 140), [])
    comparison = compare([outcomes(gold, predicted)], [outcomes(gold, predicted, "other")], "accuracy")
    assert comparison.difference == 0.0 and comparison.interval == (0.0, 0.0)
    assert comparison.p_value == 1.0
    assert (comparison.mcnemar[0].baseline_only, comparison.mcnemar[0].config_only) == (0, 0)
    assert comparison.mcnemar[0].p_value == 1.0
    assert comparison.verdict == "no significant difference at 0.05"
    macro = compare([outcomes(gold, predicted)], [outcomes(gold, predicted, "other")], "macro_f1")
    assert macro.difference == 0.0 and macro.p_value == 1.0 and macro.mcnemar == []  # not an accuracy-type metric


def test_thirty_more_right_out_of_forty_discordant_gives_the_binomial_p():
    # Both right on 0..99; only the baseline on 100..104 (5), only the config on 105..139 (35).
    gold, baseline, config = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(105, 140)])
    comparison = compare([outcomes(gold, baseline)], [outcomes(gold, config, "other")], "accuracy")
    test = comparison.mcnemar[0]
    assert (test.baseline_only, test.config_only) == (5, 35)
    assert test.p_value == pytest.approx(binomtest(35, 40).pvalue, rel=1e-12)
    assert comparison.difference == pytest.approx(30 / 200)
    low, high = comparison.interval
    assert 0 < low < 30 / 200 < high
    assert comparison.p_value < 0.01 and comparison.verdict == "better than the baseline at 0.05"


def test_holm_adjustment_worked_by_hand():
    # Sorted 0.01, 0.03, 0.04 times 3, 2, 1 → 0.03, 0.06, 0.04 → kept monotone: 0.03, 0.06, 0.06.
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert holm([]) == []


def test_a_table_of_comparisons_adjusts_its_p_values_together():
    gold, baseline, config = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(105, 140)])
    comparisons = [compare([outcomes(gold, baseline)], [outcomes(gold, candidate, "other")], "accuracy")
                   for candidate in (config, baseline)]
    adjust(comparisons)
    assert comparisons[0].holm_p == pytest.approx(min(1.0, 2 * comparisons[0].p_value))
    assert comparisons[1].holm_p == 1.0
    assert comparisons[0].mcnemar_holm == [pytest.approx(2 * comparisons[0].mcnemar[0].p_value)]


def test_different_test_sets_are_not_compared():
    gold, predicted, _ = right_and_wrong(range(100), [])
    shorter = outcomes(gold[:150], predicted[:150], "short")
    comparison = compare([outcomes(gold, predicted)], [shorter], "accuracy")
    assert comparison.difference is None and "different examples: 0 ids only in short" in comparison.reason
    relabelled = outcomes(np.roll(gold, 1), predicted, "relabelled")
    assert "gold labels of" in compare([outcomes(gold, predicted)], [relabelled], "accuracy").reason


def test_interval_coverage_on_simulated_pairs_of_runs():
    """200 simulated test sets of 400 examples, drawn from a population where the baseline is right 70% of the
    time and the config 75% (both right 65%): the 95% intervals cover the true values in 90-99% of them."""
    rng = np.random.default_rng(7)
    # both right, only the baseline, only the config, neither
    joint = [0.65, 0.05, 0.10, 0.20]
    covered_difference = covered_accuracy = 0
    for _ in range(200):
        kind = rng.choice(4, size=400, p=joint)
        gold = np.full(400, "yes", dtype=object)
        baseline = np.where(np.isin(kind, [0, 1]), "yes", "no").astype(object)
        config = np.where(np.isin(kind, [0, 2]), "yes", "no").astype(object)
        comparison = compare([outcomes(gold, baseline)], [outcomes(gold, config, "other")], "accuracy",
                             seed=int(rng.integers(1 << 31)))
        covered_difference += comparison.interval[0] <= 0.05 <= comparison.interval[1]
        interval = config_interval([outcomes(gold, baseline)], "accuracy", seed=int(rng.integers(1 << 31)))
        covered_accuracy += interval.bootstrap[0] <= 0.70 <= interval.bootstrap[1]
    assert 180 <= covered_difference <= 198, covered_difference
    assert 180 <= covered_accuracy <= 198, covered_accuracy


def test_seeds_pair_by_seed_and_say_which():
    pairs, how = pair_by_seed([(1, Path("a1")), (2, Path("a2")), (3, Path("a3"))], [(2, Path("b2")), (1, Path("b1"))])
    assert pairs == [(Path("a1"), Path("b1")), (Path("a2"), Path("b2"))]
    assert how == "paired by seed (1, 2); seeds 3 finished for one config only and are left out"
    assert pair_by_seed([(None, Path("a"))], [(None, Path("b"))]) == ([(Path("a"), Path("b"))], "one run each")
    assert pair_by_seed([(1, Path("a"))], [(2, Path("b"))])[0] == []


def test_seeded_interval_gives_the_t_interval_of_the_seeds_and_the_example_bootstrap():
    gold, first, second = right_and_wrong(range(120), range(140))
    interval = config_interval([outcomes(gold, first), outcomes(gold, second, "second")], "accuracy")
    assert interval.value == pytest.approx((0.6 + 0.7) / 2)
    # Two seeds 0.6 and 0.7: mean 0.65, standard error 0.05, t(0.975, 1 df) = 12.706.
    assert interval.t == pytest.approx((0.65 - 12.7062 * 0.05, 0.65 + 12.7062 * 0.05), abs=1e-4)
    assert interval.bootstrap[0] < 0.65 < interval.bootstrap[1] and interval.bootstrap[1] - interval.bootstrap[0] < 0.2
    # The resamples come from a fixed seed: the table is the same every time it is written.
    again = config_interval([outcomes(gold, first), outcomes(gold, second, "second")], "accuracy")
    assert again.bootstrap == interval.bootstrap


def study_runs(tmp_path: Path, names_and_seeds) -> list[Run]:
    return [Run(name if seed is None else f"{name}-seed{seed}", name, tmp_path / f"{name}.yaml", tmp_path / "r.py",
                tmp_path / "study" / (name if seed is None else f"{name}-seed{seed}"), {}, seed=seed, status="ok")
            for name, seed in names_and_seeds]


def finish(run: Run) -> None:
    run.results = json.loads((run.run_dir / "results.json").read_text())


def test_study_table_gives_intervals_comparisons_and_the_forest_plot(tmp_path):
    gold, baseline, better = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(105, 140)])
    _, _, same = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(100, 105)])
    runs = study_runs(tmp_path, [("full", None), ("better", None), ("same", None), ("elsewhere", None)])
    for run, predicted in zip(runs, (baseline, better, same)):
        write_run(run.run_dir, gold, predicted)
    write_run(runs[3].run_dir, gold, better, ids=[f"other{index}" for index in range(len(gold))])
    for run in runs:
        finish(run)
    markdown_path, csv_path = write_table(runs, tmp_path / "study", "python -m hf_tasks.study ...", [])
    rows = {row["run"]: row for row in csv.DictReader(csv_path.open())}
    low, high = float(rows["full"]["test_accuracy_ci_low"]), float(rows["full"]["test_accuracy_ci_high"])
    assert float(rows["full"]["test_accuracy"]) == pytest.approx(105 / 200)
    assert low < 105 / 200 < high
    assert rows["full"]["test_accuracy_examples"] == "200"
    markdown = markdown_path.read_text()
    assert "| run | test_accuracy | test_accuracy 95% CI | train_runtime | status |" in markdown
    assert "## Paired comparisons with the baseline full (test_accuracy)" in markdown
    assert "| better | one run each | +0.1500 |" in markdown and "| 5 / 35 |" in markdown
    assert "| same | one run each | 0.0000 | [0.0000, 0.0000] | 1 | 1 | 0 / 0 | 1 | 1 | no significant difference" \
        in markdown
    assert ("| elsewhere | one run each | — | — | — | — | — | — | — | not compared: different examples: 200 ids only "
            "in elsewhere, 200 only in full |") in markdown
    assert "Holm-adjusted across the table's 2 comparisons" in markdown
    comparisons = {row["config"]: row for row in csv.DictReader((tmp_path / "study" / "study_comparisons.csv").open())}
    assert float(comparisons["better"]["mcnemar_p"]) == pytest.approx(binomtest(35, 40).pvalue)
    better_p = float(comparisons["better"]["p_value"])
    assert float(comparisons["better"]["p_holm"]) == pytest.approx(min(1.0, 2 * better_p))
    assert comparisons["elsewhere"]["verdict"].startswith("not compared")
    assert (tmp_path / "study" / "study_differences.png").read_bytes()[:4] == b"\x89PNG"
    # --baseline picks another config; a name that is no config stops the study.
    write_table(runs, tmp_path / "study", "cmd", [], baseline="better")
    assert "## Paired comparisons with the baseline better" in markdown_path.read_text()
    with pytest.raises(BadInputError, match="--baseline nothing: not one of"):
        write_table(runs, tmp_path / "study", "cmd", [], baseline="nothing")


def test_study_table_with_seeds_pairs_runs_by_seed(tmp_path):
    runs = study_runs(tmp_path, [("full", 1), ("full", 2), ("small", 1), ("small", 2)])
    for run, right in zip(runs, (range(150), range(140), range(100), range(110))):
        gold, predicted, _ = right_and_wrong(right, [])
        write_run(run.run_dir, gold, predicted)
        finish(run)
    markdown_path, csv_path = write_table(runs, tmp_path / "study", "cmd", [])
    row = next(csv.DictReader(csv_path.open()))
    # Seeds 0.75 and 0.70: the t-interval of their mean is wide (1 degree of freedom), the example bootstrap narrow.
    t_low, t_high = float(row["test_accuracy_t_low"]), float(row["test_accuracy_t_high"])
    low, high = float(row["test_accuracy_ci_low"]), float(row["test_accuracy_ci_high"])
    assert t_low < low < 0.725 < high < t_high
    markdown = markdown_path.read_text()
    assert "test_accuracy 95% CI (t, seeds)" in markdown
    assert "| small | paired by seed (1, 2) | -0.2000 |" in markdown
    assert markdown.count("better than") + markdown.count("worse than") == 1
    comparison = next(csv.DictReader((tmp_path / "study" / "study_comparisons.csv").open()))
    assert comparison["mcnemar_baseline_only"] == "50;30" and comparison["mcnemar_config_only"] == "0;0"


def test_runs_without_per_example_outcomes_keep_the_table_and_say_why(tmp_path):
    runs = study_runs(tmp_path, [("full", None)])
    runs[0].run_dir.mkdir(parents=True)
    runs[0].results = {"test_accuracy": 0.5}
    markdown_path, _ = write_table(runs, tmp_path / "study", "cmd", [])
    markdown = markdown_path.read_text()
    assert "| run | test_accuracy | status |" in markdown
    assert "full: no interval or comparison:" in markdown and "no test_predictions.csv" in markdown


def test_compare_command_prints_the_paired_comparison(tmp_path, capsys):
    gold, baseline, config = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(105, 140)])
    write_run(tmp_path / "a", gold, baseline)
    write_run(tmp_path / "b", gold, config)
    assert compare_cli.main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert "test_accuracy on the 200 examples both runs predicted" in printed
    assert "B − A: +0.1500" in printed
    assert f"5 examples only A got right, 35 only B, p = {binomtest(35, 40).pvalue:.3g}" in printed
    assert "B is better than A at 0.05" in printed
    with pytest.raises(BadInputError, match="reports no --metric uar"):
        compare_cli.report(tmp_path / "a", tmp_path / "b", metric="uar")
    (tmp_path / "b" / "results.json").write_text('{"test_acc')  # cut short: not finished
    with pytest.raises(SystemExit) as stopped:
        compare_cli.main([str(tmp_path / "a"), str(tmp_path / "b")])
    assert stopped.value.code == 2
    assert "no readable results.json" in capsys.readouterr().err


def test_compare_takes_its_options_from_a_config_and_the_command_line_wins(tmp_path, capsys):
    gold, baseline, config = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(105, 140)])
    write_run(tmp_path / "a", gold, baseline)
    write_run(tmp_path / "b", gold, config)
    options = tmp_path / "paper.yaml"
    options.write_text("metric: macro_f1\nlatex: true\n")
    runs = [str(tmp_path / "a"), str(tmp_path / "b")]
    with pytest.raises(SystemExit):
        compare_cli.main([*runs, "--config", str(options)])
    assert "results.json reports no --metric macro_f1" in capsys.readouterr().err
    assert compare_cli.main([*runs, "--config", str(options), "--metric", "none"]) == 0  # the headline metric
    printed = capsys.readouterr().out
    assert "\\toprule" in printed and "test\\_accuracy" in printed
    assert compare_cli.main([*runs, "--config", str(options), "--latex", "false", "--metric", "accuracy"]) == 0
    assert capsys.readouterr().out.startswith("test_accuracy on the 200 examples both runs predicted")


def test_prediction_files_without_example_ids_are_named(tmp_path):
    (tmp_path / "test_predictions.csv").write_text("gold_label,predicted_label\na,a\n")
    with pytest.raises(BadInputError, match="example_id"):
        read_outcomes(tmp_path, "test")


def test_questions_compare_on_em_and_f1_in_percent(tmp_path):
    ids = [f"q{index}" for index in range(6)]
    runs = (("a", [1, 1, 0, 0, 1, 0], [1, 1, 0.5, 0, 1, 0]), ("b", [1, 0, 1, 1, 1, 0], [1, 0.5, 1, 1, 1, 0]))
    for name, exact, f1 in runs:
        (tmp_path / name).mkdir()
        (tmp_path / name / "test_question_scores.csv").write_text(
            "example_id,has_answer,exact,f1\n" + "".join(f"{q},1,{e},{f}\n" for q, e, f in zip(ids, exact, f1)))
    before, after = read_outcomes(tmp_path / "a", "test"), read_outcomes(tmp_path / "b", "test")
    exact = compare([before], [after], "exact")
    assert exact.difference == pytest.approx(100 / 6)  # EM 50% → 66.7%, in percent like results.json
    assert (exact.mcnemar[0].baseline_only, exact.mcnemar[0].config_only) == (1, 2)
    f1 = compare([before], [after], "f1")
    assert f1.difference == pytest.approx(100 * (4.5 - 3.5) / 6) and f1.mcnemar == []
    scores = (tmp_path / "b" / "test_question_scores.csv").read_text()
    (tmp_path / "b" / "test_question_scores.csv").write_text(scores.replace("q5,1,", "q5,0,"))  # other references
    assert "gold labels of 1 examples differ" in compare([before], [read_outcomes(tmp_path / "b", "test")],
                                                         "exact").reason


def test_the_study_plot_has_readable_log_ticks_and_each_configs_interval_as_error_bars(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from hf_tasks.study.table import analyse, plot_study, rows_of

    gold, baseline, better = right_and_wrong([*range(100), *range(100, 105)], [*range(100), *range(105, 140)])
    runs = study_runs(tmp_path, [("full", None), ("lora", None)])
    # Within one decade of trainable parameters, as a freeze or LoRA study often is: a bare log axis
    # would carry one labelled tick, or none.
    for run, predicted, params, seconds in zip(runs, (baseline, better), (40_000, 90_000), (120.0, 300.0)):
        write_run(run.run_dir, gold, predicted)
        results = json.loads((run.run_dir / "results.json").read_text())
        results.update(trainable_params=params, train_runtime=seconds)
        (run.run_dir / "results.json").write_text(json.dumps(results))
        finish(run)
    intervals = analyse(rows_of(runs)).intervals
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    assert plot_study(runs, tmp_path / "study.png", intervals) == tmp_path / "study.png"
    [figure] = figures
    for axis in figure.axes:
        low, high = axis.get_xlim()
        labels = [tick.get_text() for tick in axis.get_xticklabels() if low <= tick.get_position()[0] <= high]
        assert len([label for label in labels if label]) >= 2, labels
        assert all("^" not in label for label in labels), labels  # "50k", not 10⁵
        segments = [segment for collection in axis.collections for segment in collection.get_segments()]
        drawn = sorted(tuple(round(float(value), 6) for value in segment[:, 1]) for segment in segments
                       if segment[0, 0] == segment[1, 0] and segment[0, 1] != segment[1, 1])  # vertical bars
        expected = sorted((round(interval.bootstrap[0], 6), round(interval.bootstrap[1], 6))
                          for interval in intervals.values())
        assert drawn == expected
    assert "95% interval" in figure.texts[0].get_text()


def test_training_curves_mark_every_point_of_a_short_series(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from hf_tasks.plots import plot_training_curves

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_training_curves([{"step": 5, "loss": 1.2}, {"step": 5, "eval_loss": 1.1}], tmp_path / "curves.png")
    [train_line, eval_line] = figures[0].axes[0].get_lines()
    assert train_line.get_marker() == "o" and eval_line.get_marker() == "o"  # one point each, both visible


def write_question_scores(run_dir: Path, exact: list, f1: list) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "test_question_scores.csv").write_text("example_id,has_answer,exact,f1\n" + "".join(
        f"q{index},1,{e},{f}\n" for index, (e, f) in enumerate(zip(exact, f1))))
    (run_dir / "results.json").write_text(json.dumps({"test_exact": 50.0, "test_f1": 50.0}))
    return run_dir


@pytest.mark.parametrize(("cell", "reason"), [("nan", "is not a score in 0..1"), ("inf", "is not a score in 0..1"),
                                              ("", "is not a number"), ("0.5x", "is not a number"),
                                              ("1.5", "is not a score in 0..1")])
def test_a_non_finite_or_non_numeric_outcome_is_a_bad_row_named_by_file_and_row(tmp_path, capsys, cell, reason):
    exact = [1, 0] * 50
    write_question_scores(tmp_path / "a", exact, exact)
    write_question_scores(tmp_path / "b", exact, [*exact[:7], cell, *exact[8:]])
    for pair in ([tmp_path / "a", tmp_path / "b"], [tmp_path / "b", tmp_path / "a"]):
        with pytest.raises(SystemExit) as stopped:
            compare_cli.main([str(pair[0]), str(pair[1]), "--metric", "f1"])
        assert stopped.value.code == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and "test_question_scores.csv" in error
        assert f"f1 {cell!r} {reason} (row 9)" in error, error


@pytest.mark.parametrize("content", ["example_id,gold_label,predicted_label\n1,a\n",
                                     "example_id,gold_label,predicted_label\n1,a,b,c\n",
                                     "example_id,gold_label,predicted_label\n,a,b\n"])
def test_malformed_rows_of_a_prediction_file_are_bad_rows(tmp_path, content):
    (tmp_path / "test_predictions.csv").write_text(content)
    with pytest.raises(BadInputError, match=r"test_predictions.csv: .*\(row 2\)"):
        read_outcomes(tmp_path, "test")
    (tmp_path / "test_predictions.csv").write_bytes(b"example_id,gold_label,predicted_label\n\xff\xfe,a,b\n")
    with pytest.raises(BadInputError, match="not a readable CSV file"):
        read_outcomes(tmp_path, "test")


@pytest.mark.parametrize("seed", range(40))
def test_verdicts_are_antisymmetric_over_random_pairs(seed):
    """Swapping A and B flips the difference and the interval and keeps every p-value, whatever the runs."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(5, 300))
    gold = rng.choice(CLASSES, size)
    first = np.where(rng.random(size) < rng.random(), gold, rng.choice(CLASSES, size))
    second = np.where(rng.random(size) < rng.random(), gold, rng.choice(CLASSES, size))
    metric = str(rng.choice(["accuracy", "macro_f1", "weighted_f1", "uar"]))
    forward = compare([outcomes(gold, first)], [outcomes(gold, second)], metric, resamples=200, seed=seed)
    backward = compare([outcomes(gold, second)], [outcomes(gold, first)], metric, resamples=200, seed=seed)
    assert backward.difference == -forward.difference
    assert backward.interval == pytest.approx((-forward.interval[1], -forward.interval[0]))
    assert backward.p_value == forward.p_value
    flipped = {"better": "worse", "worse": "better"}
    assert backward.verdict.split(" ")[0] == flipped.get(forward.verdict.split(" ")[0], forward.verdict.split(" ")[0])
    assert [(test.config_only, test.baseline_only, test.p_value) for test in backward.mcnemar] == \
        [(test.baseline_only, test.config_only, test.p_value) for test in forward.mcnemar]
