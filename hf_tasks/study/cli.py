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

On a Slurm cluster (`hf_tasks.study.slurm`), each run is one job:

    python -m hf_tasks.study CONFIGS --output_dir DIR --executor slurm --slurm_partition gpu \
        --slurm_time 04:00:00 [--gpus_per_run 1 --cpus_per_run 8 --mem_per_run 32G \
        --slurm_option constraint=a100 --slurm_signal 120 --detach]
    python -m hf_tasks.study CONFIGS --output_dir DIR --executor slurm --status

and a search's trials are pulled by `--workers W` from one optuna storage (`hf_tasks.study.storage`):

    python -m hf_tasks.study tiny.yaml --output_dir DIR --search space.yaml --trials 50 --workers 8 \
        --storage postgresql://user:password@db-host:5432/optuna [--study_name NAME] [--executor slurm]

Command lines, configs and logs the study writes or prints never hold a secret (`hf_tasks.secrets`).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from hf_tasks import registry
from hf_tasks.config_files import SHARED_BASE_NAME
from hf_tasks.errors import BadInputError
from hf_tasks.study.runs import STORAGE_VARIABLE, Run, SlurmResources, StudyArguments, make_run, shown, study_queue
from hf_tasks.study.table import write_study

STUDY_OPTIONS = ("--output_dir", "--launcher", "--columns", "--parallel", "--devices", "--seeds", "--search",
                 "--trials", "--executor", "--storage", "--workers", "--study_name", "--heartbeat_interval",
                 "--worker", "--baseline")
SLURM_OPTIONS = ("--slurm_partition", "--slurm_account", "--slurm_qos", "--slurm_time", "--gpus_per_run",
                 "--cpus_per_run", "--mem_per_run", "--slurm_signal", "--slurm_option")
STUDY_SWITCHES = ("--detach", "--status")
EXECUTORS = ("local", "slurm")
SLURM_OPTION = re.compile(r"^(?P<key>[a-z][a-z0-9_-]*)=(?P<value>\S.*)$")


def _integers(flag: str, text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise BadInputError(f"{flag} {text}: expected whole numbers separated by commas, e.g. {flag} 42,43,44.") \
            from None
    if not values:
        raise BadInputError(f"{flag} needs at least one number, e.g. {flag} 42,43,44.")
    return values


def _count(flag: str, text: str, least: int) -> int:
    values = _integers(flag, text)
    if len(values) != 1 or values[0] < least:
        raise BadInputError(f"{flag} {text}: give one whole number, {least} or more.")
    return values[0]


def slurm_resources(options: dict[str, str], slurm_options: list[str]) -> SlurmResources:
    extra = {}
    for item in slurm_options:
        match = SLURM_OPTION.match(item)
        if match is None:
            raise BadInputError(f"--slurm_option {item!r}: give KEY=VALUE as sbatch spells it without the dashes, "
                                "e.g. --slurm_option constraint=a100.")
        extra[match["key"].replace("_", "-")] = match["value"]
    resources = SlurmResources()
    resources.partition = options.get("--slurm_partition")
    resources.account = options.get("--slurm_account")
    resources.qos = options.get("--slurm_qos")
    resources.time = options.get("--slurm_time", resources.time)
    if "--gpus_per_run" in options:
        resources.gpus_per_run = _count("--gpus_per_run", options["--gpus_per_run"], 0)
    if "--cpus_per_run" in options:
        resources.cpus_per_run = _count("--cpus_per_run", options["--cpus_per_run"], 1)
    resources.mem_per_run = options.get("--mem_per_run")
    if "--slurm_signal" in options:
        resources.signal_seconds = _count("--slurm_signal", options["--slurm_signal"], 1)
    resources.options = extra
    return resources


def parse_study_args(argv: list[str]) -> StudyArguments:
    """Configs first, then the study's own options; everything else is forwarded to every run."""
    configs, rest = [], list(argv)
    while rest and not rest[0].startswith("-"):
        configs.append(Path(rest.pop(0)))
    options: dict[str, str] = {}
    switches: set[str] = set()
    slurm_options: list[str] = []
    forwarded = []
    while rest:
        item = rest.pop(0)
        name, has_value, inline = item.partition("=")
        if name in STUDY_SWITCHES and not has_value:
            switches.add(name)
        elif name in STUDY_OPTIONS or name in SLURM_OPTIONS:
            if not has_value:
                if not rest:
                    raise BadInputError(f"{name} needs a value.")
                inline = rest.pop(0)
            if name == "--slurm_option":
                slurm_options.append(inline)
            else:
                options[name] = inline
        else:
            forwarded.append(item)
    bases = [path for path in configs if path.name == SHARED_BASE_NAME]
    if bases:
        print(f"[study] passing over {', '.join(map(str, bases))}: shared by the other configs, not an experiment",
              flush=True)
        configs = [path for path in configs if path.name != SHARED_BASE_NAME]
    if not configs:
        raise BadInputError("Give the experiment configs first: "
                            "python -m hf_tasks.study a.yaml b.yaml --output_dir DIR ...")
    # A packaged config may be named: farstail/tiny.
    configs = [path if path.is_file() else registry.find_config(str(path)) for path in configs]
    if "--output_dir" not in options:
        raise BadInputError("Give --output_dir for the study (each run goes to a folder inside it).")
    if "--parallel" in options and "--devices" in options:
        raise BadInputError("Give --devices (one run per GPU) or --parallel N (runs at once on CPU), not both.")
    seeds = _integers("--seeds", options["--seeds"]) if "--seeds" in options else None
    if seeds and any(item.split("=")[0] == "--seed" for item in forwarded):
        raise BadInputError("--seed and --seeds both given: keep --seeds (each config runs once per seed).")
    search = Path(options["--search"]) if "--search" in options else None
    if search is not None and not search.is_file():
        raise BadInputError(f"--search {search}: no such file.")
    if search is not None and len(configs) != 1:
        raise BadInputError(f"--search tunes one config; got {len(configs)}. Give the one config to tune.")
    for flag in ("--trials", "--storage", "--workers", "--study_name", "--heartbeat_interval"):
        if flag in options and search is None:
            raise BadInputError(f"{flag} needs --search space.yaml (the hyperparameters to search).")
    executor = options.get("--executor", "local")
    if executor not in EXECUTORS:
        raise BadInputError(f"--executor {executor}: give local (this machine, the default) or slurm.")
    slurm_given = sorted({name for name in options if name in SLURM_OPTIONS} | ({"--slurm_option"} if slurm_options
                                                                                  else set()))
    if slurm_given and executor != "slurm":
        raise BadInputError(f"{', '.join(slurm_given)}: Slurm resources need --executor slurm.")
    if "--detach" in switches and executor != "slurm":
        raise BadInputError("--detach needs --executor slurm (local runs end with the command that started them).")
    if executor == "slurm" and ("--devices" in options or "--parallel" in options):
        raise BadInputError("--devices/--parallel place runs on this machine; with --executor slurm give "
                            "--gpus_per_run (or num_processes in the config) instead.")
    workers = _count("--workers", options["--workers"], 1) if "--workers" in options else None
    devices = [item.strip() for item in options["--devices"].split(",") if item.strip()] \
        if "--devices" in options else None
    parallel = _count("--parallel", options["--parallel"], 1) if "--parallel" in options else 1
    return StudyArguments(
        configs=configs,
        output_dir=Path(options["--output_dir"]),
        launcher=shlex.split(options["--launcher"]) if "--launcher" in options else [sys.executable],
        columns=[name for name in options.get("--columns", "").split(",") if name],
        parallel=parallel,
        devices=devices,
        seeds=seeds,
        search=search,
        trials=_count("--trials", options["--trials"], 1) if "--trials" in options else 10,
        forwarded=forwarded,
        executor=executor,
        detach="--detach" in switches,
        status="--status" in switches,
        slurm=slurm_resources(options, slurm_options),
        storage=options.get("--storage", os.environ.get(STORAGE_VARIABLE)),
        workers=workers,
        study_name=options.get("--study_name"),
        heartbeat_interval=_count("--heartbeat_interval", options["--heartbeat_interval"], 1)
        if "--heartbeat_interval" in options else 60,
        worker=int(options["--worker"]) if "--worker" in options else None,
        baseline=options.get("--baseline"),
    )


def plan(study: StudyArguments) -> list[Run]:
    """One run per config and seed, in the order given; two configs may not share a run folder."""
    runs: list[Run] = []
    for config in study.configs:
        for seed in study.seeds or [None]:
            run = make_run(config, study.output_dir, seed=seed)
            if any(other.name == run.name for other in runs):
                raise BadInputError(f"Two configs would both run as {run.name!r}; "
                                    "give the configs different file names.")
            runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    study = parse_study_args(argv)
    if study.executor == "slurm":
        from hf_tasks.study.slurm import check_slurm

        check_slurm(study.slurm)
    if study.search is not None:
        from hf_tasks.study.search import search

        return search(study, argv)
    runs = plan(study)
    command = shown(["python", "-m", "hf_tasks.study", *argv])
    if study.executor == "slurm" or study.status:
        from hf_tasks.study.slurm import SlurmStudy

        return SlurmStudy(study).run_study(runs, command)
    queue = study_queue(study)
    for run in runs:
        queue.add(run)

    def rewrite(_finished: Run | None = None) -> None:
        write_study(runs, study, command)

    rewrite()
    queue.run_all(rewrite)
    rewrite()
    markdown_path = study.output_dir / "study.md"
    print(markdown_path.read_text(encoding="utf-8"))
    print(f"[study] wrote {markdown_path} and {study.output_dir / 'study.csv'}"
          + (f" and {study.output_dir / 'study.png'}" if (study.output_dir / "study.png").is_file() else ""))
    return 0 if all(run.status in ("ok", "reused") for run in runs) else 1
