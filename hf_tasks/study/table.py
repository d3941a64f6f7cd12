"""The study's table (`study.md`, `study.csv`) and picture (`study.png`): one row per config, metrics
averaged over its seeds as mean ± std (n)."""

from __future__ import annotations

import csv
import datetime
import platform
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hf_tasks.study.runs import Run

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


def write_table(runs: list[Run], output_dir: Path, command: str, requested: list[str]) -> tuple[Path, Path]:
    """`study.csv` (mean, `*_std` and `*_n` columns when seeded) and `study.md`; rewritten as runs finish."""
    rows = rows_of(runs)
    seeded = any(len(row.runs) > 1 for row in rows)
    columns = table_columns(rows, requested)
    output_dir.mkdir(parents=True, exist_ok=True)
    csv_path = output_dir / "study.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        header = ["run", "config", "status"]
        for name in columns:
            header += [name, f"{name}_std", f"{name}_n"] if seeded else [name]
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
            writer.writerow(cells)
    header = ["run", *columns, "status"]
    lines = [
        f"# Study: {len(rows)} configs, {len(runs)} runs",
        "",
        f"{datetime.date.today().isoformat()} on {platform.node() or 'this machine'}. Command: `{command}`",
        "",
        "eval_* = validation split, test_* = test split; times are training wall time; sizes are the saved "
        "weights. Every run's folder holds its config.yaml, results.json, predictions and plots; its log is "
        "beside it (`<run>.log`)."
        + (" Cells are mean ± sample standard deviation (number of finished seeds)." if seeded else ""),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in rows:
        link = row.runs[0].run_dir.relative_to(output_dir) if len(row.runs) == 1 else None
        cells = [f"[{row.group}]({link})" if link else row.group]
        cells += [_cell(name, row.summaries.get(name), seeded) for name in columns] + [row.status]
        lines.append("| " + " | ".join(cells) + " |")
    markdown_path = output_dir / "study.md"
    markdown_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return markdown_path, csv_path


def plot_study(runs: list[Run], path: Path) -> Path | None:
    """The headline metric per config against trainable parameters and against training time (error bars:
    the std over seeds), so what freezing, pruning or LoRA trades for accuracy is seen at a glance."""
    rows = [row for row in rows_of(runs) if row.summaries]
    metric = headline(rows)
    axes_of = [name for name in ("trainable_params", "train_runtime")
               if any(name in row.summaries for row in rows)]
    if metric is None or not axes_of:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(axes_of), figsize=(6 * len(axes_of), 4.5), squeeze=False)
    for axis, x_name in zip(axes[0], axes_of):
        for row in rows:
            x, y = row.summaries.get(x_name), row.summaries.get(metric)
            if x is None or y is None:
                continue
            axis.errorbar(x.mean, y.mean, yerr=y.std or 0.0, xerr=(x.std or 0.0) if x_name == "train_runtime" else 0.0,
                          fmt="o", capsize=4)
            axis.annotate(row.group, (x.mean, y.mean), textcoords="offset points", xytext=(5, 5), fontsize=8)
        axis.set_xscale("log")
        axis.set_xlabel("trainable parameters" if x_name == "trainable_params" else "training time (s)")
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
    figure.suptitle(f"{metric} per config" + (" (mean ± std over seeds)" if any(len(r.runs) > 1 for r in rows) else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
