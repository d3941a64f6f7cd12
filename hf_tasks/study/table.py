"""The study's table (`study.md`, `study.csv`) and pictures (`study.png`, `study_differences.png`): one row per
config, metrics averaged over its seeds as mean ± std (n), the headline metric with its 95% intervals, and each
config compared with a baseline (`study_comparisons.csv`; `study.tex` for a paper, `hf_tasks.study.latex`); the
statistics are `hf_tasks.study.stats`'."""

from __future__ import annotations

import csv
import datetime
import platform
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_tasks.errors import BadInputError
from hf_tasks.files import atomic_path, write_atomic, write_with
from hf_tasks.study.dashboard import log_study
from hf_tasks.study.latex import Entry, latex_table
from hf_tasks.study.runs import Run
from hf_tasks.study.stats import (
    CONFIDENCE,
    RESAMPLES,
    SIGNIFICANCE,
    Comparison,
    Interval,
    Outcomes,
    adjust,
    compare,
    config_interval,
    pair_by_seed,
    read_outcomes,
)

#: Metric names (without eval_/test_) in the order they are shown when a run reports them.
HEADLINE_METRICS = ("accuracy", "macro_f1", "exact", "f1", "uar", "weighted_f1")
# trainable_share (trainable_params / total_params) sits beside the count it qualifies; study.md shows it as a
# percent, study.csv as the fraction results.json holds. Peak memory is the main process's (GPU allocations
# on CUDA, resident size on CPU).
EXTRA_COLUMNS = ("eval_loss", "test_loss", "train_loss", "trainable_params", "trainable_share", "total_params",
                 "train_runtime", "peak_gpu_memory_mb", "peak_cpu_memory_mb", "model_size_mb")


@dataclass
class Summary:
    """A metric over the finished runs of one config: std is the sample standard deviation (n - 1)."""

    mean: float
    std: float | None
    n: int


@dataclass
class Row:
    group: str
    runs: list[Run]
    summaries: dict[str, Summary]

    @property
    def status(self) -> str:
        if len(self.runs) == 1:
            return self.runs[0].status
        done = sum(run.status in ("ok", "reused") for run in self.runs)
        others = sorted({run.status for run in self.runs if run.status not in ("ok", "reused")})
        return f"{done}/{len(self.runs)} done" + (f" ({'; '.join(others)})" if others else "")


def summarise(values: list[float]) -> Summary:
    return Summary(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


def rows_of(runs: list[Run]) -> list[Row]:
    """Runs grouped by config in the order given; every numeric result averaged over the group's runs."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    rows = []
    for group, members in groups.items():
        names = {name for run in members for name in run.results}
        summaries = {}
        for name in names:
            values = [float(run.results[name]) for run in members if isinstance(run.results.get(name), (int, float))
                      and not isinstance(run.results.get(name), bool)]
            if values:
                summaries[name] = summarise(values)
        rows.append(Row(group, members, summaries))
    return rows


def table_columns(rows: list[Row], requested: list[str]) -> list[str]:
    """Headline metrics the runs report (validation and test), then losses, sizes and times."""
    present = set().union(*(row.summaries for row in rows)) if rows else set()
    columns = [f"{prefix}_{metric}" for metric in HEADLINE_METRICS for prefix in ("eval", "test")
               if f"{prefix}_{metric}" in present]
    subsets = sorted(key for key in present if key.startswith("test_accuracy_"))
    columns += subsets + [name for name in EXTRA_COLUMNS if name in present]
    return columns + [name for name in requested if name not in columns]


def headline(rows: list[Row]) -> str | None:
    """The metric a study is judged by: the first headline metric reported, on test when there is one."""
    present = set().union(*(row.summaries for row in rows)) if rows else set()
    for metric in HEADLINE_METRICS:
        for prefix in ("test", "eval"):
            if f"{prefix}_{metric}" in present:
                return f"{prefix}_{metric}"
    return None


def _shown(name: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if name.endswith("_params"):
        return f"{round(value):,}"
    if name.endswith("_share"):
        return f"{float(value) * 100:.3g}%"
    if name.endswith(("runtime", "_seconds")):
        return f"{float(value) / 60:.1f} min" if float(value) >= 60 else f"{float(value):.1f} s"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def _cell(name: str, summary: Summary | None, seeded: bool) -> str:
    if summary is None:
        return "—"
    if not seeded:
        return _shown(name, summary.mean)
    spread = "—" if summary.std is None else _shown(name, summary.std)
    return f"{_shown(name, summary.mean)} ± {spread} ({summary.n})"


@dataclass
class Analysis:
    """The headline metric's intervals per config and the paired comparisons with the baseline config;
    `notes` say what could not be computed and why."""

    metric: str | None
    baseline: str | None = None
    intervals: dict[str, Interval] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def baseline_group(rows: list[Row], baseline: str | None) -> str | None:
    """The group of the baseline config: given as its file path, its file name without .yaml, or its row name;
    by default the first config's."""
    if not rows:
        return None
    if baseline is None:
        return rows[0].group
    for row in rows:
        config = row.runs[0].config
        if baseline in (row.group, config.stem, str(config)) or Path(baseline) == config:
            return row.group
    raise BadInputError(f"--baseline {baseline}: not one of the study's configs "
                        f"({', '.join(row.group for row in rows)}); give one of them.")


def analyse(rows: list[Row], baseline: str | None = None) -> Analysis:
    """Intervals of the headline metric from each config's per-example outcomes, and each config compared with
    the baseline on the examples both predicted (runs paired by seed), Holm-adjusted across the table."""
    metric = headline(rows)
    analysis = Analysis(metric, baseline_group(rows, baseline))
    if metric is None:
        return analysis
    prefix, name = metric.split("_", 1)
    finished: dict[str, list[tuple[Run, Outcomes]]] = {}
    for row in rows:
        runs = [run for run in row.runs if isinstance(run.results.get(metric), (int, float))]
        try:
            finished[row.group] = [(run, read_outcomes(run.run_dir, prefix)) for run in runs]
        except BadInputError as error:
            analysis.notes.append(f"{row.group}: no interval or comparison: {error}")
            continue
        if runs:
            try:
                analysis.intervals[row.group] = config_interval([outcomes for _run, outcomes in finished[row.group]],
                                                                name, [float(run.results[metric]) for run in runs])
            except BadInputError as error:
                analysis.notes.append(f"{row.group}: no interval: {error}")
    base = finished.get(analysis.baseline)
    if not base:
        analysis.notes.append(f"no comparisons: the baseline {analysis.baseline} has no finished run with per-example "
                              "outcomes yet")
        return analysis
    for row in rows:
        if row.group == analysis.baseline or not finished.get(row.group):
            continue
        outcomes_of = {run.run_dir: outcomes for run, outcomes in [*base, *finished[row.group]]}
        pairs, how = pair_by_seed([(run.seed, run.run_dir) for run, _ in base],
                                  [(run.seed, run.run_dir) for run, _ in finished[row.group]])
        if not pairs:
            analysis.comparisons.append(Comparison(row.group, analysis.baseline, name, how, reason=how))
            continue
        analysis.comparisons.append(compare([outcomes_of[before] for before, _ in pairs],
                                            [outcomes_of[after] for _, after in pairs], name,
                                            names=(analysis.baseline, row.group), pairing=how))
    adjust(analysis.comparisons)
    return analysis


def _interval_text(interval: tuple[float, float] | None, name: str) -> str:
    return "—" if interval is None else f"[{_shown(name, interval[0])}, {_shown(name, interval[1])}]"


def _signed(name: str, value: float) -> str:
    return ("+" if value > 0 else "") + _shown(name, float(value))


def _p(value: float | None) -> str:
    return "—" if value is None else (f"{value:.3g}" if value >= 0.001 else "< 0.001")


def comparison_lines(analysis: Analysis, seeded: bool) -> list[str]:
    """The paired-comparisons section of study.md."""
    if analysis.metric is None or not analysis.comparisons:
        return []
    metric = analysis.metric
    accuracy_type = any(comparison.mcnemar for comparison in analysis.comparisons)
    examples = next((comparison.examples for comparison in analysis.comparisons if comparison.reason is None), 0)
    compared = sum(comparison.reason is None for comparison in analysis.comparisons)
    lines = [
        "",
        f"## Paired comparisons with the baseline {analysis.baseline} ({metric})",
        "",
        f"Each config against the baseline on the {examples or ''} examples both predicted: the difference in {metric} "
        f"(config − baseline) with its paired-bootstrap {CONFIDENCE:.0%} interval and two-sided p-value "
        f"({RESAMPLES} resamples of the examples, fixed seed)"
        + ("; McNemar's exact test from the discordant pairs (b: only the baseline right, c: only the config "
           "right)" if accuracy_type else "")
        + f"; p-values Holm-adjusted across the table's {compared} comparison{'s' * (compared != 1)}. The verdict "
        f"reads the Holm-adjusted bootstrap p at {SIGNIFICANCE:g}."
        + (" With seeds, runs are paired by seed, the difference is the mean over the pairs, and McNemar's test "
           "is run per seed pair (Holm-adjusted across all of them)." if seeded else ""),
        "",
    ]
    header = ["config", "pairing", "difference", f"{CONFIDENCE:.0%} CI", "p", "p (Holm)"]
    if accuracy_type:
        header += ["McNemar b / c", "McNemar p", "McNemar p (Holm)"]
    header.append("verdict")
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for comparison in analysis.comparisons:
        if comparison.reason is not None:
            cells = [comparison.config, comparison.pairing, *["—"] * (len(header) - 3), comparison.verdict]
        else:
            cells = [comparison.config, comparison.pairing, _signed(metric, comparison.difference),
                     _interval_text(comparison.interval, metric), _p(comparison.p_value), _p(comparison.holm_p)]
            if accuracy_type:
                cells += ["; ".join(f"{test.baseline_only} / {test.config_only}" for test in comparison.mcnemar) or "—",
                          "; ".join(_p(test.p_value) for test in comparison.mcnemar) or "—",
                          "; ".join(_p(value) for value in comparison.mcnemar_holm) or "—"]
            cells.append(comparison.verdict)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def write_comparisons(analysis: Analysis, path: Path) -> Path:
    """`study_comparisons.csv`: one row per compared config (full precision, for copying into papers)."""
    def write(handle) -> None:
        writer = csv.writer(handle)
        writer.writerow(["config", "baseline", "metric", "pairing", "examples", "difference", "ci_low", "ci_high",
                         "p_value", "p_holm", "mcnemar_baseline_only", "mcnemar_config_only", "mcnemar_p",
                         "mcnemar_p_holm", "verdict"])
        for comparison in analysis.comparisons:
            interval = comparison.interval or ("", "")
            writer.writerow([
                comparison.config, comparison.baseline, analysis.metric, comparison.pairing, comparison.examples,
                "" if comparison.difference is None else comparison.difference, *interval,
                "" if comparison.p_value is None else comparison.p_value,
                "" if comparison.holm_p is None else comparison.holm_p,
                ";".join(str(test.baseline_only) for test in comparison.mcnemar),
                ";".join(str(test.config_only) for test in comparison.mcnemar),
                ";".join(str(test.p_value) for test in comparison.mcnemar),
                ";".join(str(value) for value in comparison.mcnemar_holm), comparison.verdict])

    return write_with(path, write)


def write_table(runs: list[Run], output_dir: Path, command: str, requested: list[str],
                baseline: str | None = None, analysis: Analysis | None = None) -> tuple[Path, Path]:
    """`study.csv` (mean, `*_std` and `*_n` columns when seeded; the headline's interval bounds) and `study.md`,
    and, once a config can be compared with the baseline, `study_comparisons.csv` and `study_differences.png`;
    rewritten as runs finish."""
    rows = rows_of(runs)
    seeded = any(len(row.runs) > 1 for row in rows)
    columns = table_columns(rows, requested)
    analysis = analysis or analyse(rows, baseline)
    metric = analysis.metric
    with_intervals = bool(analysis.intervals)
    output_dir.mkdir(parents=True, exist_ok=True)

    def interval_cells(row: Row) -> list[Any]:
        interval = analysis.intervals.get(row.group)
        if interval is None:
            return ["", "", ""] + (["", ""] if seeded else [])
        cells = [*interval.bootstrap, interval.examples]
        return cells + ([*interval.t] if interval.t else ["", ""]) * seeded

    def write_csv(handle) -> None:
        writer = csv.writer(handle)
        header = ["run", "config", "status"]
        for name in columns:
            header += [name, f"{name}_std", f"{name}_n"] if seeded else [name]
            if with_intervals and name == metric:
                header += [f"{name}_ci_low", f"{name}_ci_high", f"{name}_examples"]
                header += [f"{name}_t_low", f"{name}_t_high"] if seeded else []
        writer.writerow(header)
        for row in rows:
            cells: list[Any] = [row.group, str(row.runs[0].config), row.status]
            for name in columns:
                summary = row.summaries.get(name)
                if not seeded:
                    cells.append(row.runs[0].results.get(name, ""))  # as the run wrote it (counts stay whole)
                elif summary is None:
                    cells += ["", "", ""]
                else:
                    cells += [summary.mean, "" if summary.std is None else summary.std, summary.n]
                if with_intervals and name == metric:
                    cells += interval_cells(row)
            writer.writerow(cells)

    csv_path = write_with(output_dir / "study.csv", write_csv)
    interval_headers = [f"{metric} {CONFIDENCE:.0%} CI" + (" (examples)" if seeded else "")]
    interval_headers += [f"{metric} {CONFIDENCE:.0%} CI (t, seeds)"] if seeded else []
    header = ["run"]
    for name in columns:
        header += [name, *interval_headers] if with_intervals and name == metric else [name]
    header.append("status")
    lines = [
        f"# Study: {len(rows)} configs, {len(runs)} runs",
        "",
        f"{datetime.date.today().isoformat()} on {platform.node() or 'this machine'}. Command: `{command}`",
        "",
        "eval_* = validation split, test_* = test split; times are training wall time; sizes are the saved "
        "weights. Every run's folder holds its config.yaml, results.json, predictions and plots; its log is "
        "beside it (`<run>.log`)."
        + (" Cells are mean ± sample standard deviation (number of finished seeds)." if seeded else "")
        + (f" {metric} {CONFIDENCE:.0%} CI: percentile bootstrap over the split's examples ({RESAMPLES} "
           "resamples, fixed seed)" + (" of the mean over seeds; (t, seeds): Student's t-interval of the seeds' "
                                       "mean" if seeded else "") + "." if with_intervals else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in rows:
        link = row.runs[0].run_dir.relative_to(output_dir) if len(row.runs) == 1 else None
        cells = [f"[{row.group}]({link})" if link else row.group]
        for name in columns:
            cells.append(_cell(name, row.summaries.get(name), seeded))
            if with_intervals and name == metric:
                interval = analysis.intervals.get(row.group)
                cells.append(_interval_text(interval and interval.bootstrap, name))
                if seeded:
                    cells.append(_interval_text(interval and interval.t, name))
        lines.append("| " + " | ".join(cells + [row.status]) + " |")
    lines += comparison_lines(analysis, seeded)
    if analysis.notes:
        lines += ["", *(f"- {note}" for note in analysis.notes)]
    markdown_path = write_atomic(output_dir / "study.md", "\n".join(lines) + "\n")
    if metric is not None:
        write_atomic(output_dir / "study.tex", study_latex(rows, analysis))
    if any(comparison.reason is None for comparison in analysis.comparisons):
        write_comparisons(analysis, output_dir / "study_comparisons.csv")
        plot_differences(analysis, output_dir / "study_differences.png")
    return markdown_path, csv_path


def study_latex(rows: list[Row], analysis: Analysis) -> str:
    """`study.tex`: the headline metric of every config with its interval and its comparison with the baseline."""
    metric = analysis.metric
    comparisons = {comparison.config: comparison for comparison in analysis.comparisons}
    entries = []
    for row in rows:
        interval = analysis.intervals.get(row.group)
        summary = row.summaries.get(metric)
        value = interval.value if interval is not None else (summary.mean if summary is not None else None)
        entries.append(Entry(row.group, value, interval and interval.bootstrap, comparisons.get(row.group)))
    seeds = max(len(row.runs) for row in rows)
    caption = f"{metric} per config" + (f", mean over up to {seeds} seeds" if seeds > 1 else "") + "."
    return latex_table(metric, analysis.baseline, entries, caption)


def plot_differences(analysis: Analysis, path: Path) -> Path | None:
    """A forest plot: each config's difference from the baseline in the headline metric with its paired-
    bootstrap interval, zero marked; a config whose interval leaves zero is drawn filled."""
    compared = [comparison for comparison in analysis.comparisons if comparison.reason is None]
    if not compared:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 1.2 + 0.5 * len(compared)))
    for position, comparison in enumerate(reversed(compared)):
        low, high = comparison.interval
        clear = low > 0 or high < 0
        spread = [[comparison.difference - low], [high - comparison.difference]]
        axis.errorbar(comparison.difference, position, xerr=spread, fmt="o", capsize=4, color="C0",
                      markerfacecolor="C0" if clear else "white")
    axis.axvline(0.0, color="grey", linestyle="--", linewidth=1)
    axis.set_yticks(range(len(compared)), [comparison.config for comparison in reversed(compared)])
    axis.set_xlabel(f"{analysis.metric}: config − {analysis.baseline} (paired bootstrap {CONFIDENCE:.0%} CI)")
    axis.set_title("filled: the interval leaves out 0", fontsize=9)
    axis.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
    return path


def _compact(value: float, _position=None) -> str:
    """A tick label a reader can read: 2000 → "2k", 1500000 → "1.5M", 0.5 → "0.5"."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:g}{suffix}"
    return f"{value:g}"


def _readable_log_axis(axis, values: list[float]) -> None:
    """A log x axis with ticks at 1, 2 and 5 times each power of ten, labelled as plain numbers, wide
    enough that at least two of them fall inside (a log axis alone ticks only the powers of ten)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_xscale("log")
    low, high = min(values), max(values)
    axis.set_xlim(low / 1.6, high * 1.6)
    axis.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(FuncFormatter(_compact))
    axis.xaxis.set_minor_formatter(NullFormatter())


def plot_study(runs: list[Run], path: Path, intervals: dict[str, Interval] | None = None) -> Path | None:
    """The headline metric per config against trainable parameters and against training time, so what
    freezing, pruning or LoRA trades for accuracy is seen at a glance. Error bars: each config's 95%
    interval (`analyse`) where it has one, else the std over seeds; training time's std over seeds."""
    rows = [row for row in rows_of(runs) if row.summaries]
    metric = headline(rows)
    axes_of = [name for name in ("trainable_params", "train_runtime")
               if any(name in row.summaries and row.summaries[name].mean > 0 for row in rows)]
    if metric is None or not axes_of:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    intervals = intervals or {}
    figure, axes = plt.subplots(1, len(axes_of), figsize=(6 * len(axes_of), 4.5), squeeze=False)
    for axis, x_name in zip(axes[0], axes_of):
        drawn = []
        for row in rows:
            x, y = row.summaries.get(x_name), row.summaries.get(metric)
            if x is None or y is None or x.mean <= 0:
                continue
            interval = intervals.get(row.group)
            yerr = ([[y.mean - interval.bootstrap[0]], [interval.bootstrap[1] - y.mean]] if interval
                    else y.std or 0.0)
            axis.errorbar(x.mean, y.mean, yerr=yerr, xerr=(x.std or 0.0) if x_name == "train_runtime" else 0.0,
                          fmt="o", capsize=4)
            axis.annotate(row.group, (x.mean, y.mean), textcoords="offset points", xytext=(5, 5), fontsize=8)
            drawn.append(x.mean)
        if drawn:
            _readable_log_axis(axis, drawn)
        axis.set_xlabel("trainable parameters" if x_name == "trainable_params" else "training time (s)")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3, which="major")
    bars = f"{CONFIDENCE:.0%} interval" if intervals else "std over seeds"
    figure.suptitle(f"{metric} per config (error bars: {bars})")
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)
    return path


def write_study(runs: list[Run], study, command: str) -> None:
    """Everything a study shows as it stands now (`write_table`, `plot_study`): rewritten as runs finish,
    by whichever executor ran them. `study` is the `StudyArguments`."""
    analysis = analyse(rows_of(runs), study.baseline)
    write_table(runs, study.output_dir, command, study.columns, study.baseline, analysis)
    plot_study(runs, study.output_dir / "study.png", analysis.intervals)
    log_study(study.output_dir)
