"""Run a list of experiment configs and write one comparison table (Markdown + CSV) and picture.

    python -m hf_tasks.study recipes/configs/farstail/*.yaml --output_dir runs/study [recipe flags ...]
    python -m hf_tasks.study recipes/configs/farstail/*.yaml --output_dir runs/study \\
        --devices 0,1,2,3,4,5,6,7 --seeds 42,43,44 --max_train_samples 500
    python -m hf_tasks.study recipes/configs/farstail/tiny.yaml --output_dir runs/search \\
        --search space.yaml --trials 20 --parallel 2

Each config runs through its recipe: `recipes/configs/<recipe>/<name>.yaml` belongs to
`recipes/<recipe>.py`, or the config names it with a `recipe:` key (a path). A config may ask for
several processes with `num_processes: k`; it then gets k devices and runs under accelerate (torchrun
on CPU). Runs go to `<output_dir>/<recipe>-<name>[-seed<s>]/`, each in its own process, as many at once
as `--devices` (one run per device) or `--parallel N` (CPU) allow; each run's log is `<run>.log` beside
its folder. Every flag the study does not know itself is passed to every run.

Run again with the same command to continue a study: finished runs (results.json present) are reused,
stopped ones continue from their newest checkpoint, and a failed run is tried once more before it is
reported as failed in the table (the exit status is then non-zero). The table (`study.md`,
`study.csv`; mean ± std (n) per metric with `--seeds`) and `study.png` are rewritten as runs finish.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from hf_tasks.config_files import SHARED_BASE_NAME
from hf_tasks.study.runs import Run, StudyArguments, make_run, study_queue
from hf_tasks.study.table import plot_study, write_table

STUDY_OPTIONS = ("--output_dir", "--launcher", "--columns", "--parallel", "--devices", "--seeds", "--search",
                 "--trials", "--baseline")


def _integers(flag: str, text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise SystemExit(f"{flag} {text}: expected whole numbers separated by commas, e.g. {flag} 42,43,44.") from None
    if not values:
        raise SystemExit(f"{flag} needs at least one number, e.g. {flag} 42,43,44.")
    return values


def parse_study_args(argv: list[str]) -> StudyArguments:
    """Configs first, then the study's own options; everything else is forwarded to every run."""
    configs, rest = [], list(argv)
    while rest and not rest[0].startswith("-"):
        configs.append(Path(rest.pop(0)))
    options: dict[str, str] = {}
    forwarded = []
    while rest:
        item = rest.pop(0)
        name, has_value, inline = item.partition("=")
        if name in STUDY_OPTIONS:
            if not has_value:
                if not rest:
                    raise SystemExit(f"{name} needs a value.")
                inline = rest.pop(0)
            options[name] = inline
        else:
            forwarded.append(item)
    bases = [path for path in configs if path.name == SHARED_BASE_NAME]
    if bases:
        print(f"[study] passing over {', '.join(map(str, bases))}: shared by the other configs, not an experiment",
              flush=True)
        configs = [path for path in configs if path.name != SHARED_BASE_NAME]
    if not configs:
        raise SystemExit("Give the experiment configs first: "
                         "python -m hf_tasks.study a.yaml b.yaml --output_dir DIR ...")
    missing = [str(path) for path in configs if not path.is_file()]
    if missing:
        raise SystemExit(f"No such config file(s): {missing}.")
    if "--output_dir" not in options:
        raise SystemExit("Give --output_dir for the study (each run goes to a folder inside it).")
    if "--parallel" in options and "--devices" in options:
        raise SystemExit("Give --devices (one run per GPU) or --parallel N (runs at once on CPU), not both.")
    seeds = _integers("--seeds", options["--seeds"]) if "--seeds" in options else None
    if seeds and any(item.split("=")[0] == "--seed" for item in forwarded):
        raise SystemExit("--seed and --seeds both given: keep --seeds (each config runs once per seed).")
    search = Path(options["--search"]) if "--search" in options else None
    if search is not None and not search.is_file():
        raise SystemExit(f"--search {search}: no such file.")
    if search is not None and len(configs) != 1:
        raise SystemExit(f"--search tunes one config; got {len(configs)}. Give the one config to tune.")
    if "--trials" in options and search is None:
        raise SystemExit("--trials needs --search space.yaml (the hyperparameters to search).")
    return StudyArguments(
        configs=configs,
        output_dir=Path(options["--output_dir"]),
        launcher=shlex.split(options["--launcher"]) if "--launcher" in options else [sys.executable],
        columns=[name for name in options.get("--columns", "").split(",") if name],
        parallel=_integers("--parallel", options["--parallel"])[0] if "--parallel" in options else 1,
        devices=[item.strip() for item in options["--devices"].split(",") if item.strip()]
        if "--devices" in options else None,
        seeds=seeds,
        search=search,
        trials=_integers("--trials", options["--trials"])[0] if "--trials" in options else 10,
        forwarded=forwarded,
        baseline=options.get("--baseline"),
    )


def plan(study: StudyArguments) -> list[Run]:
    """One run per config and seed, in the order given; two configs may not share a run folder."""
    runs: list[Run] = []
    for config in study.configs:
        for seed in study.seeds or [None]:
            run = make_run(config, study.output_dir, seed=seed)
            if any(other.name == run.name for other in runs):
                raise SystemExit(f"Two configs would both run as {run.name!r}; give the configs different file names.")
            runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    study = parse_study_args(argv)
    if study.search is not None:
        from hf_tasks.study.search import search

        return search(study)
    runs = plan(study)
    queue = study_queue(study)
    for run in runs:
        queue.add(run)
    command = shlex.join(["python", "-m", "hf_tasks.study", *argv])

    def rewrite(_finished: Run | None = None) -> None:
        write_table(runs, study.output_dir, command, study.columns, study.baseline)
        plot_study(runs, study.output_dir / "study.png")

    rewrite()
    queue.run_all(rewrite)
    rewrite()
    markdown_path = study.output_dir / "study.md"
    print(markdown_path.read_text(encoding="utf-8"))
    print(f"[study] wrote {markdown_path} and {study.output_dir / 'study.csv'}"
          + (f" and {study.output_dir / 'study.png'}" if (study.output_dir / "study.png").is_file() else ""))
    return 0 if all(run.status in ("ok", "reused") for run in runs) else 1
