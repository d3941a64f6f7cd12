"""The statistics a study's claims rest on, computed from the per-example outcomes every run writes.

Outcomes: a classification run's `{eval,test}_predictions.csv` (`example_id`, `gold_label`, `predicted_label`)
and a QA run's `{eval,test}_question_scores.csv` (`example_id`, per-question `exact` and `f1`, 0..1). From them:

- an interval for one config's metric: the percentile bootstrap over test examples (Efron & Tibshirani 1993),
  `RESAMPLES` resamples drawn from a fixed seed so a table is the same every time it is written; with several
  seeds the statistic is the mean over seeds, resampled with the same examples for every seed, and the
  t-interval over the seeds' values is given beside it (it covers seed-to-seed variation, the bootstrap the
  choice of test examples);
- a paired comparison of two configs on the examples both predicted: the paired bootstrap (Berg-Kirkpatrick
  et al. 2012; Dror et al. 2018) resamples examples once for both, giving the difference's interval and a
  two-sided p-value (the share of resampled differences at least as far from the observed one as the observed
  one is from zero, the bootstrap's picture of the null); for accuracy-type metrics McNemar's exact test on
  the discordant pairs (a binomial test of "config right, baseline wrong" among all discordant examples);
- Holm's step-down adjustment (Holm 1979) of the p-values of all comparisons in one table.

Every statistic is a function of a weights matrix (resamples × examples: how often each example is drawn), so
a thousand resamples are a few matrix products, and weights of all ones give the metric the run reported.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats

from hf_tasks.data.bad_rows import RowProblem, describe
from hf_tasks.errors import BadInputError
from hf_tasks.metrics.classification import summary_metrics

RESAMPLES = 1000
SEED = 20260101
CONFIDENCE = 0.95
SIGNIFICANCE = 0.05
#: Metrics whose per-example outcome is right or wrong, so McNemar's test applies.
ACCURACY_TYPE = ("accuracy", "exact")
#: Metrics results.json holds in percent (the official SQuAD script's): 100 × the mean per-question score.
PERCENT_METRICS = ("exact", "f1")
CONFUSION_METRICS = ("accuracy", "macro_f1", "weighted_f1", "uar")
_CHUNK = 100  # resamples scored at once: bounds memory to 100 × examples weights


@dataclass
class Outcomes:
    """One run's per-example outcomes on one split (labelled examples only), in the file's order."""

    path: Path
    ids: np.ndarray
    gold: np.ndarray | None = None  # class names (classification)
    predicted: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)  # per-example exact/f1 (QA)
    answerable: np.ndarray | None = None  # QA: whether each question has a gold answer

    def __len__(self) -> int:
        return len(self.ids)

    def in_order(self, ids: np.ndarray) -> Outcomes:
        """The same outcomes in the order of `ids` (the same set of ids)."""
        position = {example: index for index, example in enumerate(self.ids)}
        order = np.array([position[example] for example in ids], dtype=np.int64)
        return Outcomes(self.path, self.ids[order], None if self.gold is None else self.gold[order],
                        None if self.predicted is None else self.predicted[order],
                        {name: values[order] for name, values in self.scores.items()},
                        None if self.answerable is None else self.answerable[order])

    def correct(self) -> np.ndarray:
        """1 where the example is right: the predicted class is the gold one, or the answer matches exactly."""
        if self.gold is not None:
            return (self.gold == self.predicted).astype(np.float64)
        return (self.scores["exact"] == 1.0).astype(np.float64)


def outcome_file(run_dir: Path, prefix: str) -> Path:
    """Where a run keeps its per-example outcomes of the split with metric prefix `prefix` (eval or test)."""
    questions = Path(run_dir) / f"{prefix}_question_scores.csv"
    return questions if questions.is_file() else Path(run_dir) / f"{prefix}_predictions.csv"


def read_outcomes(run_dir: Path, prefix: str) -> Outcomes:
    """The labelled examples' outcomes of one run and split; a missing or unusable file is a BadInputError."""
    path = outcome_file(run_dir, prefix)
    if not path.is_file():
        raise BadInputError(f"{run_dir}: no {prefix}_predictions.csv or {prefix}_question_scores.csv; the run did "
                            f"not predict its {'test' if prefix == 'test' else 'validation'} split (or has not "
                            "finished).")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as error:
        raise BadInputError(f"{path}: not a readable CSV file ({error}); rerun the run to write it again.") from None
    columns = set(rows[0]) if rows else set()
    qa = path.name.endswith("_question_scores.csv")
    needed = {"example_id", "exact", "f1"} if qa else {"example_id", "gold_label", "predicted_label"}
    if not needed <= columns:
        raise BadInputError(f"{path}: no column(s) {sorted(needed - columns)}; it was written before runs kept "
                            "per-example ids: rerun the run to compare it.")
    problems = [RowProblem("row", line, reason) for line, row in enumerate(rows, start=2)
                for reason in [outcome_problem(row, needed, qa)] if reason is not None]
    if problems:
        # one NaN would make every comparison "significant" in both directions: a bad row, never a number
        raise BadInputError(f"{path}: {describe(problems)}; rerun the run (or fix the file) to compare it.")
    if not qa:
        rows = [row for row in rows if row["gold_label"] != ""]  # unlabelled test rows are predicted, not scored
    if not rows:
        raise BadInputError(f"{path}: no labelled examples to score.")
    ids = np.array([row["example_id"] for row in rows], dtype=object)
    if len(set(ids)) != len(ids):
        repeated = next(example for example in ids if (ids == example).sum() > 1)
        raise BadInputError(f"{path}: example_id {repeated!r} appears more than once; ids must name one example.")
    if qa:
        scores = {name: np.array([float(row[name]) for row in rows]) for name in ("exact", "f1")}
        answerable = np.array([row["has_answer"] == "1" for row in rows]) if "has_answer" in columns else None
        return Outcomes(path, ids, scores=scores, answerable=answerable)
    return Outcomes(path, ids, np.array([row["gold_label"] for row in rows], dtype=object),
                    np.array([row["predicted_label"] for row in rows], dtype=object))


def outcome_problem(row: dict, needed: set[str], qa: bool) -> str | None:
    """Why one row of an outcome file cannot be scored (a missing cell, a score that is not a finite number
    in 0..1, an empty id or prediction), or None."""
    if None in row or any(row.get(name) is None for name in needed):
        return "wrong number of cells"
    if row["example_id"] == "":
        return "empty example_id"
    if not qa:
        return "empty predicted_label" if row["gold_label"] != "" and row["predicted_label"] == "" else None
    for name in ("exact", "f1"):
        try:
            value = float(row[name])
        except ValueError:
            return f"{name} {row[name]!r} is not a number"
        if not 0.0 <= value <= 1.0:  # also false for nan
            return f"{name} {row[name]!r} is not a score in 0..1"
    return None


def scorer(outcomes: Outcomes, metric: str) -> Callable[[np.ndarray], np.ndarray]:
    """`metric` of `outcomes` for each row of a weights matrix (resamples × examples), as results.json has it."""
    if outcomes.gold is None:
        if metric not in outcomes.scores:
            raise BadInputError(f"{outcomes.path}: holds {sorted(outcomes.scores)} per question, not {metric!r}.")
        values = outcomes.scores[metric] * (100.0 if metric in PERCENT_METRICS else 1.0)
        return lambda weights: weights @ values / weights.sum(axis=1)
    if metric == "accuracy":  # the share right: one product per resample instead of a confusion matrix
        right = outcomes.correct()
        return lambda weights: weights @ right / weights.sum(axis=1)
    if metric not in CONFUSION_METRICS:
        raise BadInputError(f"{outcomes.path}: {metric!r} cannot be scored per example; use one of "
                            f"{list(CONFUSION_METRICS)}.")
    classes = {name: index for index, name in enumerate(sorted(set(outcomes.gold) | set(outcomes.predicted)))}
    size = len(classes)
    cells = np.array([classes[gold] * size + classes[predicted]
                      for gold, predicted in zip(outcomes.gold, outcomes.predicted)])
    # Examples sorted by their (gold, predicted) cell: each cell's count is one sum over a run of columns.
    order = np.argsort(cells, kind="stable")
    present, starts = np.unique(cells[order], return_index=True)

    def score(weights: np.ndarray) -> np.ndarray:
        matrices = np.zeros((len(weights), size * size))
        matrices[:, present] = np.add.reduceat(weights[:, order], starts, axis=1)
        return summary_metrics(matrices.reshape(len(weights), size, size))[metric]

    return score


def resample_weights(examples: int, resamples: int = RESAMPLES, seed: int = SEED) -> Iterator[np.ndarray]:
    """Bootstrap resamples of `examples` examples, as weights (how often each is drawn), in chunks."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, _CHUNK):
        rows = min(_CHUNK, resamples - start)
        drawn = rng.integers(0, examples, size=(rows, examples)) + examples * np.arange(rows)[:, None]
        yield np.bincount(drawn.ravel(), minlength=rows * examples).reshape(rows, examples).astype(np.float64)


def bootstrap(statistic: Callable[[np.ndarray], np.ndarray], examples: int, resamples: int = RESAMPLES,
              seed: int = SEED) -> np.ndarray:
    """The statistic on each bootstrap resample of the examples."""
    return np.concatenate([statistic(weights) for weights in resample_weights(examples, resamples, seed)])


def observed(statistic: Callable[[np.ndarray], np.ndarray], examples: int) -> float:
    return float(statistic(np.ones((1, examples)))[0])


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def t_interval(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Student's t-interval for the mean of `values` (seeds' results); None with fewer than two."""
    if len(values) < 2:
        return None
    sample = np.asarray(values, dtype=np.float64)
    mean, error = float(sample.mean()), float(stats.sem(sample))
    if error == 0.0:
        return mean, mean
    low, high = stats.t.interval(confidence, len(sample) - 1, loc=mean, scale=error)
    return float(low), float(high)


def same_examples(outcomes: list[Outcomes]) -> str | None:
    """Why these runs cannot be paired example by example (different ids or different gold labels), or None."""
    first = outcomes[0]
    reference = set(first.ids)
    for other in outcomes[1:]:
        ids = set(other.ids)
        if ids != reference:
            return (f"different examples: {len(ids - reference)} ids only in {other.path.parent.name}, "
                    f"{len(reference - ids)} only in {first.path.parent.name}")
        aligned = other.in_order(first.ids)
        for gold, theirs in ((first.gold, aligned.gold), (first.answerable, aligned.answerable)):
            differing = 0 if gold is None or theirs is None else int((theirs != gold).sum())
            if differing:
                return (f"the gold labels of {differing} examples differ between {first.path.parent.name} "
                        f"and {other.path.parent.name}")
        if (first.gold is None) != (other.gold is None):
            return "one run scores classes and the other answers"
    return None


@dataclass
class Interval:
    """A config's metric (mean over its seeds) with its example-bootstrap interval and, with seeds, the
    t-interval over seeds."""

    value: float
    examples: int
    bootstrap: tuple[float, float]
    t: tuple[float, float] | None


def config_interval(outcomes: list[Outcomes], metric: str, reported: list[float] | None = None,
                    resamples: int = RESAMPLES, seed: int = SEED) -> Interval:
    """The interval of one config from its runs' outcomes (one per seed, all on the same examples).

    `reported` are the runs' own values from results.json, for the t-interval; without them the values the
    outcomes give are used (they are equal: a test holds them so)."""
    reason = same_examples(outcomes)
    if reason is not None:
        raise BadInputError(f"the seeds of one config were scored on different test sets: {reason}.")
    aligned = [outcomes[0], *(other.in_order(outcomes[0].ids) for other in outcomes[1:])]
    scorers = [scorer(run, metric) for run in aligned]

    def mean_over_seeds(weights: np.ndarray) -> np.ndarray:
        return np.mean([score(weights) for score in scorers], axis=0)

    examples = len(aligned[0])
    values = reported if reported is not None else [observed(score, examples) for score in scorers]
    return Interval(observed(mean_over_seeds, examples), examples,
                    percentile_interval(bootstrap(mean_over_seeds, examples, resamples, seed)), t_interval(values))


@dataclass
class McNemar:
    """McNemar's exact test of one pair of runs: `baseline_only` examples only the baseline got right,
    `config_only` only the config; p is two-sided."""

    baseline_only: int
    config_only: int
    p_value: float


def mcnemar(baseline: Outcomes, config: Outcomes) -> McNemar:
    """The exact (binomial) McNemar test on two runs' right/wrong outcomes, aligned on the same ids."""
    right_before, right_after = baseline.correct(), config.in_order(baseline.ids).correct()
    baseline_only = int(((right_before == 1) & (right_after == 0)).sum())
    config_only = int(((right_before == 0) & (right_after == 1)).sum())
    discordant = baseline_only + config_only
    p_value = stats.binomtest(config_only, discordant, 0.5).pvalue if discordant else 1.0
    return McNemar(baseline_only, config_only, float(p_value))


@dataclass
class Comparison:
    """One config against the baseline on the headline metric; `reason` says why it was not compared."""

    config: str
    baseline: str
    metric: str
    pairing: str = ""
    examples: int = 0
    difference: float | None = None
    interval: tuple[float, float] | None = None
    p_value: float | None = None
    holm_p: float | None = None
    mcnemar: list[McNemar] = field(default_factory=list)
    mcnemar_holm: list[float] = field(default_factory=list)
    reason: str | None = None

    @property
    def verdict(self) -> str:
        if self.reason is not None:
            return f"not compared: {self.reason}"
        p_value = self.holm_p if self.holm_p is not None else self.p_value
        if p_value >= SIGNIFICANCE:
            return f"no significant difference at {SIGNIFICANCE:g}"
        return f"{'better' if self.difference > 0 else 'worse'} than the baseline at {SIGNIFICANCE:g}"


def compare(baseline: list[Outcomes], config: list[Outcomes], metric: str, *, names: tuple[str, str] = ("", ""),
            pairing: str = "", resamples: int = RESAMPLES, seed: int = SEED) -> Comparison:
    """The paired comparison of `config` with `baseline`: runs paired position by position (one pair per
    seed), every pair scored on the same bootstrap resamples of the examples; the difference is config −
    baseline, averaged over the pairs."""
    if len(baseline) != len(config) or not baseline:
        raise ValueError(f"{len(baseline)} baseline runs and {len(config)} config runs: pair them one to one.")
    comparison = Comparison(names[1], names[0], metric, pairing)
    reason = same_examples([*baseline, *config])
    if reason is not None:
        comparison.reason = reason
        return comparison
    ids = baseline[0].ids
    before = [scorer(run.in_order(ids), metric) for run in baseline]
    after = [scorer(run.in_order(ids), metric) for run in config]

    def difference(weights: np.ndarray) -> np.ndarray:
        return np.mean([new(weights) - old(weights) for old, new in zip(before, after)], axis=0)

    examples = len(ids)
    observed_difference = observed(difference, examples)
    resampled = bootstrap(difference, examples, resamples, seed)
    # Centred at the observed difference, the resampled differences picture the null's spread around zero.
    extreme = int((np.abs(resampled - observed_difference) >= abs(observed_difference)).sum())
    comparison.examples = examples
    comparison.difference = observed_difference
    comparison.interval = percentile_interval(resampled)
    comparison.p_value = (extreme + 1) / (len(resampled) + 1)
    if metric in ACCURACY_TYPE:
        comparison.mcnemar = [mcnemar(old, new) for old, new in zip(baseline, config)]
    return comparison


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: the k-th smallest of m is multiplied by m - k + 1, kept monotone
    and capped at 1 (rejecting where the adjusted p < alpha controls the family-wise error at alpha)."""
    if not p_values:
        return []
    values = np.asarray(p_values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    scaled = values[order] * (len(values) - np.arange(len(values)))
    adjusted = np.empty_like(values)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted.tolist()


def adjust(comparisons: list[Comparison]) -> None:
    """Holm-adjust the table's bootstrap p-values across its comparisons, and its McNemar p-values across all
    the McNemar tests it makes (one per seed pair)."""
    compared = [comparison for comparison in comparisons if comparison.reason is None]
    for comparison, adjusted in zip(compared, holm([comparison.p_value for comparison in compared])):
        comparison.holm_p = adjusted
    tests = [(comparison, test) for comparison in compared for test in comparison.mcnemar]
    for comparison in compared:
        comparison.mcnemar_holm = []
    for (comparison, _test), adjusted in zip(tests, holm([test.p_value for _comparison, test in tests])):
        comparison.mcnemar_holm.append(adjusted)


def pair_by_seed(baseline: list[tuple[int | None, Path]], config: list[tuple[int | None, Path]]
                 ) -> tuple[list[tuple[Path, Path]], str]:
    """Runs of the two configs paired by seed (seed s of the config against seed s of the baseline), with a
    sentence saying how; one unseeded run each pairs as it is."""
    if len(baseline) == 1 and len(config) == 1 and (baseline[0][0] is None or config[0][0] is None):
        return [(baseline[0][1], config[0][1])], "one run each"
    seeds_before, seeds_after = dict(baseline), dict(config)
    common = [seed for seed in seeds_before if seed in seeds_after]
    pairs = [(seeds_before[seed], seeds_after[seed]) for seed in common]
    unpaired = sorted(set(seeds_before) ^ set(seeds_after), key=str)
    how = f"paired by seed ({', '.join(map(str, common))})" if common else "no seed in common"
    if common and unpaired:
        how += f"; seeds {', '.join(map(str, unpaired))} finished for one config only and are left out"
    return pairs, how
