"""The paired comparison of any two run folders on one split's examples: is B better than A, and by how much?

    hf-tasks compare runs/full runs/freeze9                 # or python -m hf_tasks.study.compare
    hf-tasks compare runs/full runs/freeze9 --metric macro_f1 --split eval

A is the baseline. The metric defaults to A's headline metric (`hf_tasks.study.table.HEADLINE_METRICS`), on the
test split when A reported one, else on validation. Prints both runs' values with their bootstrap intervals, the
difference B − A with its paired-bootstrap interval and p-value, and, for accuracy-type metrics, McNemar's exact
test from the discordant pairs (`hf_tasks.study.stats` says how each is computed). With `--latex` the same
comparison is printed as a booktabs table for a paper (`hf_tasks.study.latex`).
"""

from __future__ import annotations

import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from hf_tasks.errors import BadInputError, one_line_errors
from hf_tasks.files import read_json
from hf_tasks.parsing import parse_command
from hf_tasks.study.latex import Entry, latex_table
from hf_tasks.study.stats import CONFIDENCE, RESAMPLES, SEED, adjust, compare, config_interval, read_outcomes
from hf_tasks.study.table import HEADLINE_METRICS


def finished_results(run_dir: Path) -> dict:
    results = read_json(run_dir / "results.json")
    if not isinstance(results, dict):
        raise BadInputError(f"{run_dir}: no readable results.json; the run has not finished (or is not a run "
                            "folder).")
    return results


def chosen_metric(results: dict, metric: str | None, split: str | None) -> tuple[str, str]:
    """(prefix, metric name) to compare: the ones asked for, else the run's headline metric."""
    prefixes = [split] if split else ["test", "eval"]
    names = [metric] if metric else list(HEADLINE_METRICS)
    for name in names:
        for prefix in prefixes:
            if isinstance(results.get(f"{prefix}_{name}"), (int, float)):
                return prefix, name
    asked = " ".join(filter(None, [metric and f"--metric {metric}", split and f"--split {split}"]))
    raise BadInputError(f"the baseline's results.json reports no {asked or 'headline metric'} "
                        f"(it has {', '.join(sorted(key for key in results if key.startswith(('eval_', 'test_'))))}).")


def report(baseline_dir: Path, config_dir: Path, metric: str | None = None, split: str | None = None,
           latex: bool = False) -> str:
    """The comparison as printed: text, or a LaTeX table."""
    results = finished_results(baseline_dir)
    finished_results(config_dir)
    prefix, name = chosen_metric(results, metric, split)
    before, after = read_outcomes(baseline_dir, prefix), read_outcomes(config_dir, prefix)
    shown = f"{prefix}_{name}"
    comparison = compare([before], [after], name, names=(str(baseline_dir), str(config_dir)))
    if comparison.reason is not None:
        raise BadInputError(f"{baseline_dir} and {config_dir} cannot be compared on {shown}: {comparison.reason}.")
    if latex:
        adjust([comparison])  # one comparison: Holm leaves its p as it is
        entries = [Entry(folder.name, interval.value, interval.bootstrap, found)
                   for folder, interval, found in ((baseline_dir, config_interval([before], name), None),
                                                   (config_dir, config_interval([after], name), comparison))]
        return latex_table(shown, baseline_dir.name, entries).rstrip("\n")
    lines = [f"{shown} on the {comparison.examples} examples both runs predicted "
             f"({RESAMPLES} bootstrap resamples, seed {SEED}, {CONFIDENCE:.0%} intervals):"]
    for label, outcomes in (("A", before), ("B", after)):
        interval = config_interval([outcomes], name)
        lines.append(f"  {label} {outcomes.path.parent}: {interval.value:.4f} "
                     f"[{interval.bootstrap[0]:.4f}, {interval.bootstrap[1]:.4f}]")
    low, high = comparison.interval
    lines.append(f"  B − A: {comparison.difference:+.4f} [{low:+.4f}, {high:+.4f}], paired bootstrap p = "
                 f"{comparison.p_value:.3g}")
    for test in comparison.mcnemar:
        lines.append(f"  McNemar's exact test: {test.baseline_only} examples only A got right, {test.config_only} "
                     f"only B, p = {test.p_value:.3g}")
    verdict = comparison.verdict.replace("the baseline", "A")
    lines.append(f"  B is {verdict}" if not verdict.startswith("no ") else f"  {verdict}")
    return "\n".join(lines)


@dataclass
class CompareOptions:
    """What is compared, and how it is printed."""

    metric: str | None = field(default=None, metadata={
        "help": f"Metric name without eval_/test_ (default: A's first of {', '.join(HEADLINE_METRICS)})."})
    split: Literal["test", "eval"] | None = field(default=None, metadata={
        "help": "test, or eval (validation); default: test when A has it."})
    latex: bool = field(default=False, metadata={"help": "Print the comparison as a booktabs LaTeX table."})


def main(argv: list[str] | None = None) -> int:
    with one_line_errors():
        (baseline, config), options = parse_command(CompareOptions, argv, words=("RUN_A", "RUN_B"),
                                                    description=__doc__)
        print(report(Path(baseline), Path(config), options.metric, options.split, latex=options.latex))
    return 0


if __name__ == "__main__":
    sys.exit(main())
