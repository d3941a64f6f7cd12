"""Run a list of experiment configs and write one comparison table (Markdown + CSV).

    python -m hf_tasks.study recipes/configs/farstail/*.yaml --output_dir runs/study [recipe flags ...]
    python -m hf_tasks.study recipes/configs/farstail/*.yaml --output_dir runs/study \\
        --launcher "accelerate launch" --skip_existing --max_train_samples 50

Each config runs through its recipe: `recipes/configs/<recipe>/<name>.yaml` belongs to
`recipes/<recipe>.py`, or the config names it with a `recipe:` key (a path). Runs go to
`<output_dir>/<recipe>-<name>/` one after another, each in its own process (so memory and GPUs are
free again between runs, and any launcher works); every flag the study does not know itself is
passed to every run. A failed run is reported in the table and the study goes on; the exit status
is non-zero if any run failed. The table (`study.md`, `study.csv`) has the task's headline metrics on
validation and test, losses, parameter counts, training time and model size on disk, for any recipe.
"""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STUDY_OPTIONS = ("--output_dir", "--launcher", "--columns")
STUDY_FLAGS = ("--skip_existing",)
#: Metric names (without eval_/test_) in the order they are shown when a run reports them.
HEADLINE_METRICS = ("accuracy", "macro_f1", "exact", "f1", "uar", "weighted_f1")
EXTRA_COLUMNS = ("eval_loss", "test_loss", "train_loss", "trainable_params", "total_params", "train_runtime",
                 "model_size_mb")
WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class StudyArguments:
    configs: list[Path]
    output_dir: Path
    launcher: list[str] = field(default_factory=lambda: [sys.executable])
    skip_existing: bool = False
    columns: list[str] = field(default_factory=list)
    forwarded: list[str] = field(default_factory=list)


def parse_study_args(argv: list[str]) -> StudyArguments:
    """Configs first, then the study's own options; everything else is forwarded to every run."""
    configs, rest = [], list(argv)
    while rest and not rest[0].startswith("-"):
        configs.append(Path(rest.pop(0)))
    options: dict[str, str] = {}
    flags, forwarded = set(), []
    while rest:
        item = rest.pop(0)
        name, has_value, inline = item.partition("=")
        if name in STUDY_OPTIONS:
            if not has_value:
                if not rest:
                    raise SystemExit(f"{name} needs a value.")
                inline = rest.pop(0)
            options[name] = inline
        elif item in STUDY_FLAGS:
            flags.add(item)
        else:
            forwarded.append(item)
    if not configs:
        raise SystemExit("Give the experiment configs first: python -m hf_tasks.study a.yaml b.yaml --output_dir DIR ...")
    missing = [str(path) for path in configs if not path.is_file()]
    if missing:
        raise SystemExit(f"No such config file(s): {missing}.")
    if "--output_dir" not in options:
        raise SystemExit("Give --output_dir for the study (each run goes to a folder inside it).")
    return StudyArguments(
        configs=configs,
        output_dir=Path(options["--output_dir"]),
        launcher=shlex.split(options["--launcher"]) if "--launcher" in options else [sys.executable],
        skip_existing="--skip_existing" in flags,
        columns=[name for name in options.get("--columns", "").split(",") if name],
        forwarded=forwarded,
    )


def resolve_recipe(config: Path) -> tuple[Path, dict[str, Any]]:
    """The recipe script of `config` and the config's own values (without a `recipe:` key)."""
    values = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    if not isinstance(values, dict):
        raise SystemExit(f"{config}: expected a mapping of argument names to values.")
    named = values.pop("recipe", None)
    if named is not None:
        for candidate in (Path(named), config.parent / named):
            if candidate.is_file():
                return candidate, values
        raise SystemExit(f"{config}: recipe: {named} is not a file (relative to the current folder or the config).")
    for folder in config.resolve().parents:
        if folder.parent.name == "configs":
            script = folder.parent.parent / f"{folder.name}.py"
            if script.is_file():
                return script, values
            break
    raise SystemExit(
        f"{config}: cannot tell its recipe. Put it under recipes/configs/<recipe>/ next to recipes/<recipe>.py, "
        "or add a `recipe: path/to/recipe.py` key."
    )


def weights_size_mb(run_dir: Path) -> float | None:
    """Size of the saved model weights in the run folder (checkpoints not counted)."""
    files = [path for path in run_dir.iterdir() if path.suffix in WEIGHT_SUFFIXES] if run_dir.is_dir() else []
    return round(sum(path.stat().st_size for path in files) / 2**20, 3) if files else None


@dataclass
class Run:
    name: str
    config: Path
    recipe: Path
    run_dir: Path
    status: str = "not run"
    results: dict[str, Any] = field(default_factory=dict)


def run_one(run: Run, values: dict[str, Any], study: StudyArguments) -> None:
    run.run_dir.mkdir(parents=True, exist_ok=True)
    results_path = run.run_dir / "results.json"
    if study.skip_existing and results_path.is_file():
        run.status = "reused"
    else:
        config = run.config
        if "recipe" in (yaml.safe_load(run.config.read_text(encoding="utf-8")) or {}):
            # The recipe's parser accepts argument names only; give it the config without `recipe:`.
            config = run.run_dir / "study_config.yaml"
            config.write_text(yaml.safe_dump(values, allow_unicode=True, sort_keys=False), encoding="utf-8")
        command = [*study.launcher, str(run.recipe), "--config", str(config), "--output_dir", str(run.run_dir),
                   *study.forwarded]
        env = dict(os.environ)
        # The recipe imports hf_tasks from this checkout even when the package is not installed.
        package_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        print(f"[study] {run.name}: {shlex.join(command)}", flush=True)
        with (run.run_dir / "study.log").open("w", encoding="utf-8") as log:
            finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        if finished.returncode != 0:
            run.status = f"failed (exit {finished.returncode}; see {run.run_dir / 'study.log'})"
            print(f"[study] {run.name}: {run.status}", flush=True)
            return
        run.status = "ok"
    if not results_path.is_file():
        run.status = f"no results.json in {run.run_dir}"
        return
    run.results = json.loads(results_path.read_text(encoding="utf-8"))
    if run.results.get("model_size_mb") is None:
        size = weights_size_mb(run.run_dir)
        if size is not None:
            run.results["model_size_mb"] = size
    print(f"[study] {run.name}: {run.status}", flush=True)


def table_columns(runs: list[Run], requested: list[str]) -> list[str]:
    """Headline metrics the runs report (validation and test), then losses, sizes and times."""
    present = set().union(*(run.results for run in runs)) if runs else set()
    columns = [f"{prefix}_{metric}" for metric in HEADLINE_METRICS for prefix in ("eval", "test")
               if f"{prefix}_{metric}" in present]
    subsets = sorted(key for key in present if key.startswith("test_accuracy_"))
    columns += subsets + [name for name in EXTRA_COLUMNS if name in present]
    return columns + [name for name in requested if name not in columns]


def _shown(name: str, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if name.endswith("_params"):
        return f"{int(value):,}"
    if name.endswith(("runtime", "_seconds")):
        return f"{float(value) / 60:.1f} min" if float(value) >= 60 else f"{float(value):.1f} s"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
    return str(value)


def write_table(runs: list[Run], study: StudyArguments) -> tuple[Path, Path]:
    columns = table_columns(runs, study.columns)
    study.output_dir.mkdir(parents=True, exist_ok=True)
    csv_path = study.output_dir / "study.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["run", "config", "status", *columns])
        for run in runs:
            writer.writerow([run.name, str(run.config), run.status, *(run.results.get(name, "") for name in columns)])
    header = ["run", *columns, "status"]
    lines = [
        f"# Study: {len(runs)} runs",
        "",
        f"{datetime.date.today().isoformat()} on {platform.node() or 'this machine'}. Command: "
        f"`python -m hf_tasks.study {' '.join(str(run.config) for run in runs)} --output_dir {study.output_dir}"
        f"{' ' + shlex.join(study.forwarded) if study.forwarded else ''}`",
        "",
        "eval_* = validation split, test_* = test split; times are training wall time; sizes are the saved "
        "weights. Every run's folder holds its config.yaml, results.json, predictions and plots.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for run in runs:
        cells = [f"[{run.name}]({run.run_dir.relative_to(study.output_dir)})"]
        cells += [_shown(name, run.results.get(name)) for name in columns] + [run.status]
        lines.append("| " + " | ".join(cells) + " |")
    markdown_path = study.output_dir / "study.md"
    markdown_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return markdown_path, csv_path


def main(argv: list[str] | None = None) -> int:
    study = parse_study_args(sys.argv[1:] if argv is None else argv)
    runs, values_of = [], {}
    for config in study.configs:
        recipe, values = resolve_recipe(config)
        name = f"{recipe.stem}-{config.stem}"
        if any(run.name == name for run in runs):
            raise SystemExit(f"Two configs would both run as {name!r}; give the configs different file names.")
        runs.append(Run(name, config, recipe, study.output_dir / name))
        values_of[name] = values
    for run in runs:
        run_one(run, values_of[run.name], study)
    markdown_path, csv_path = write_table(runs, study)
    print(markdown_path.read_text(encoding="utf-8"))
    print(f"[study] wrote {markdown_path} and {csv_path}")
    return 0 if all(run.status in ("ok", "reused") for run in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
