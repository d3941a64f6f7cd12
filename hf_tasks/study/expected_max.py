"""Expected validation performance (Dodge et al. 2019, "Show Your Work"): from a search's N finished trials,
the best validation score one expects after n = 1..N trials of the same search.

Two estimators from the N scores sorted from worst to best, v(1) <= ... <= v(N):

- with replacement (Dodge et al.): n trials drawn with replacement from the N, so
  E[max] = sum_i v(i) [(i/N)^n - ((i-1)/N)^n];
- without replacement, unbiased for the search itself (Tang et al. 2020, "Showing Your Work Doesn't Always
  Work"): n of the N trials, every n-subset equally likely, so v(i) is the best with probability
  C(i-1, n-1) / C(N, n).

The band is the percentile bootstrap of the unbiased curve over resamples of the N trials (`RESAMPLES`, fixed
seed): how much the curve would move with another draw of the same search. For a metric to minimise (a loss)
"best" is the smallest: the curves are of the expected minimum.

`search_expected_max.csv` and `search_expected_max.png` are written for every search; with several searches
(one per config) `write_curves` draws one plot with a curve per config and `search_expected_max.md` says from
which budget on one config's curve stays above (better than) another's.
"""

from __future__ import annotations

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import gammaln

from hf_tasks.files import atomic_path, write_atomic, write_with
from hf_tasks.study.stats import CONFIDENCE, RESAMPLES, SEED, percentile_interval

COLUMNS = ("n", "expected_max_with_replacement", "expected_max_unbiased", "band_low", "band_high")


def _log_comb(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def with_replacement_weights(size: int) -> np.ndarray:
    """(budget n, rank i) → the probability that the i-th smallest of `size` values is the best of n draws with
    replacement; rows are n = 1..size."""
    share = np.arange(size + 1) / size
    budgets = np.arange(1, size + 1)[:, None]
    return share[None, 1:] ** budgets - share[None, :-1] ** budgets


def unbiased_weights(size: int) -> np.ndarray:
    """(budget n, rank i) → C(i-1, n-1) / C(size, n): the probability that the i-th smallest is the best of an
    n-subset drawn without replacement; rows are n = 1..size (zero where i < n)."""
    budgets = np.arange(1, size + 1)[:, None]
    ranks = np.arange(1, size + 1)[None, :]
    possible = ranks >= budgets
    logs = _log_comb(ranks - 1, np.minimum(budgets, ranks) - 1) - _log_comb(np.full_like(budgets, size), budgets)
    return np.where(possible, np.exp(np.where(possible, logs, 0.0)), 0.0)


def _oriented(values, maximize: bool) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"expected-max curves need one finite score per finished trial; got {values!r}")
    return array if maximize else -array


def expected_max_with_replacement(values, maximize: bool = True) -> np.ndarray:
    """The expected best of n = 1..N draws with replacement from `values` (the best is the least when not
    `maximize`)."""
    oriented = np.sort(_oriented(values, maximize))
    curve = with_replacement_weights(len(oriented)) @ oriented
    return curve if maximize else -curve


def expected_max_unbiased(values, maximize: bool = True) -> np.ndarray:
    """The expected best of n = 1..N of `values` drawn without replacement (Tang et al. 2020)."""
    oriented = np.sort(_oriented(values, maximize))
    curve = unbiased_weights(len(oriented)) @ oriented
    return curve if maximize else -curve


@dataclass
class Curve:
    """One search's expected best score per budget n = 1..N, with the bootstrap band of the unbiased curve."""

    name: str
    metric: str
    maximize: bool
    with_replacement: np.ndarray
    unbiased: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray

    @property
    def trials(self) -> int:
        return len(self.unbiased)


def curve(values, name: str = "", metric: str = "", maximize: bool = True, resamples: int = RESAMPLES,
          seed: int = SEED) -> Curve:
    """Both estimators for `values` (the finished trials' scores) and the band: the unbiased curve of each
    bootstrap resample of the trials, its percentile interval per budget."""
    oriented = _oriented(values, maximize)
    rng = np.random.default_rng(seed)
    resampled = np.sort(oriented[rng.integers(0, len(oriented), size=(resamples, len(oriented)))], axis=1)
    curves = resampled @ unbiased_weights(len(oriented)).T  # resamples × budgets
    low, high = np.array([percentile_interval(column, CONFIDENCE) for column in curves.T]).T
    sign = 1.0 if maximize else -1.0
    if not maximize:
        low, high = high, low
    return Curve(name, metric, maximize, expected_max_with_replacement(values, maximize),
                 expected_max_unbiased(values, maximize), sign * low, sign * high)


def write_curve_csv(result: Curve, path: Path) -> Path:
    """`search_expected_max.csv`: one row per budget n (full precision)."""
    def write(handle) -> None:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for index in range(result.trials):
            writer.writerow([index + 1, result.with_replacement[index], result.unbiased[index],
                             result.band_low[index], result.band_high[index]])

    return write_with(path, write)


def stays_ahead_from(first: Curve, second: Curve) -> int | None:
    """The smallest budget n from which `first`'s unbiased curve is at least as good as `second`'s at every
    budget both searches reached, or None when `second` is ahead at the largest common budget."""
    common = min(first.trials, second.trials)
    sign = 1.0 if first.maximize else -1.0
    ahead = sign * (first.unbiased[:common] - second.unbiased[:common]) >= 0
    if not ahead[-1]:
        return None
    behind = np.flatnonzero(~ahead)
    return int(behind[-1]) + 2 if len(behind) else 1


def crossing_lines(curves: list[Curve]) -> list[str]:
    """For every ordered pair of configs, from which budget on one stays ahead of the other (Markdown)."""
    lines = ["| config | stays ahead of | from n = | of n ≤ |", "|---|---|---|---|"]
    for first, second in itertools.permutations(curves, 2):
        start = stays_ahead_from(first, second)
        if start is not None:
            lines.append(f"| {first.name} | {second.name} | {start} | {min(first.trials, second.trials)} |")
    return lines


def plot_curves(curves: list[Curve], path: Path) -> Path:
    """Expected best score against the number of trials: the unbiased curve with its band, and the
    with-replacement curve dashed, one colour per config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for index, result in enumerate(curves):
        budgets = np.arange(1, result.trials + 1)
        colour = f"C{index % 10}"
        label = result.name or "unbiased (without replacement)"
        axis.plot(budgets, result.unbiased, marker="o", markersize=3, color=colour, label=label)
        axis.fill_between(budgets, result.band_low, result.band_high, color=colour, alpha=0.15)
        axis.plot(budgets, result.with_replacement, linestyle="--", color=colour, alpha=0.8,
                  label=None if len(curves) > 1 else "with replacement (Dodge et al.)")
    metric = curves[0].metric
    best = "max" if curves[0].maximize else "min"
    axis.set_xlabel("trials (budget n)")
    axis.set_ylabel(f"expected {best} {metric}".strip())
    axis.set_title(f"Expected validation performance (line: unbiased estimator; band: its bootstrap "
                   f"{CONFIDENCE:.0%}" + (";\ndashed: with replacement)" if len(curves) > 1 else ")"), fontsize=9)
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
    return path


def write_curves(curves: list[Curve], output_dir: Path) -> list[Path]:
    """One search: its CSV and plot. Several (one per config): each config's CSV as
    `search_expected_max-<config>.csv`, one plot with a curve per config, and `search_expected_max.md` saying
    from which budget on each config stays ahead of each other."""
    if len(curves) == 1:
        return [write_curve_csv(curves[0], output_dir / "search_expected_max.csv"),
                plot_curves(curves, output_dir / "search_expected_max.png")]
    written = [write_curve_csv(result, output_dir / f"search_expected_max-{result.name}.csv") for result in curves]
    written.append(plot_curves(curves, output_dir / "search_expected_max.png"))
    lines = [f"# Expected validation performance: {', '.join(result.name for result in curves)}", "",
             f"Expected best {curves[0].metric} after n trials (unbiased estimator, Tang et al. 2020), per config. "
             "A row says from which budget on the first config's curve stays at least as good as the second's, up "
             "to the largest budget both searches reached.",
             "", *crossing_lines(curves)]
    written.append(write_atomic(output_dir / "search_expected_max.md", "\n".join(lines) + "\n"))
    return written
