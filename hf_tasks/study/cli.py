"""Run a list of experiment configs and write one comparison table (Markdown + CSV) and picture.

    hf-tasks study recipes/configs/farstail/*.yaml --output_dir runs/study [recipe flags ...]
    hf-tasks study recipes/configs/farstail/*.yaml --output_dir runs/study \\
        --devices 0,1,2,3,4,5,6,7 --seeds 42,43,44 --max_train_samples 500
    hf-tasks study recipes/configs/farstail/tiny.yaml --output_dir runs/search \\
        --search space.yaml --trials 20 --parallel 2
    hf-tasks study a.yaml b.yaml --output_dir runs/searches --search space.yaml --trials 20

(`python -m hf_tasks.study` is the same command.)

Each config (a file, or a packaged config by name: farstail/tiny) runs through its recipe:
`configs/<recipe>/<name>.yaml` belongs to `<recipe>`, or the config names it with a `recipe:` key (a
recipe's name, or a script's path). The study's own options below may also come from `--config`. A config may ask for
several processes with `num_processes: k`; it then gets k devices and runs under accelerate (torchrun
on CPU). Runs go to `<output_dir>/<recipe>-<name>[-seed<s>]/`, each in its own process, as many at once
as `--devices` (one run per device) or `--parallel N` (CPU) allow; each run's log is `<run>.log` beside
its folder. Every flag the study does not know itself is passed to every run; one that a run's recipe (a
registered one; a script given by its path is not checked) does not take stops the study before it starts.

Run again with the same command to continue a study: finished runs (results.json present) are reused,
stopped ones continue from their newest checkpoint, and a failed run is tried once more before it is
reported as failed in the table (the exit status is then non-zero); a run whose recipe refused its input (a
bad config, flag or data file) is reported at once, with its one-line error. The table (`study.md`,
`study.csv`; mean ± std (n) per metric with `--seeds`) and `study.png` are rewritten as runs finish.

On a Slurm cluster (`hf_tasks.study.slurm`), each run is one job:

    hf-tasks study CONFIGS --output_dir DIR --executor slurm --slurm_partition gpu \\
        --slurm_time 04:00:00 [--gpus_per_run 1 --cpus_per_run 8 --mem_per_run 32G \\
        --slurm_option constraint=a100 --slurm_signal 120 --detach]
    hf-tasks study CONFIGS --output_dir DIR --executor slurm --status

and a search's trials are pulled by `--workers W` from one optuna storage (`hf_tasks.study.storage`):

    hf-tasks study tiny.yaml --output_dir DIR --search space.yaml --trials 50 --workers 8 \\
        --storage postgresql://user:password@db-host:5432/optuna [--study_name NAME] [--executor slurm]

Command lines, configs and logs the study writes or prints never hold a secret (`hf_tasks.secrets`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hf_tasks import registry
from hf_tasks.config_files import SHARED_BASE_NAME
from hf_tasks.errors import BadInputError, program_name, refuse_control_characters
from hf_tasks.parsing import leading_words, parse_options
from hf_tasks.secrets import shown
from hf_tasks.study.runs import (
    STORAGE_VARIABLE,
    Run,
    SlurmResources,
    StudyArguments,
    make_run,
    resolve_recipe,
    study_queue,
)
from hf_tasks.study.table import write_study

EXECUTORS = ("local", "slurm")
SLURM_OPTION = re.compile(r"^(?P<key>[a-z][a-z0-9_-]*)=(?P<value>\S.*)$")
USAGE = "CONFIGS... --output_dir DIR [--option VALUE ...] [recipe flags, passed to every run ...]"


@dataclass
class StudyOptions:
    output_dir: str | None = field(default=None, metadata={"help": "The study's folder: one folder per run inside it, "
                                                                   "and study.md, study.csv, study.png."})
    seeds: str | None = field(default=None, metadata={"help": "Run each config once per seed: 42,43,44 (the table "
                                                              "shows mean ± std (n) and intervals)."})
    baseline: str | None = field(default=None, metadata={"help": "The config the table compares the others with "
                                                                 "(its file name; default: the first)."})
    columns: str | None = field(default=None, metadata={"help": "More metrics for the table, without eval_/test_: "
                                                                "uar,macro_f1."})
    parallel: int | None = field(default=None, metadata={"help": "Runs at once on CPU (default 1)."})
    devices: str | None = field(default=None, metadata={"help": "GPUs to place runs on, one run per GPU: 0,1,2,3."})
    launcher: str | None = field(default=None, metadata={"help": "How each run starts (default: this Python), e.g. "
                                                                 "'accelerate launch --num_processes 2'."})
    executor: str = field(default="local", metadata={"help": "local (this machine) or slurm (one job per run)."})


@dataclass
class SearchOptions:
    search: str | None = field(default=None, metadata={"help": "A YAML file of the hyperparameters to search over "
                                                              "(optuna); tunes the one config given."})
    trials: int | None = field(default=None, metadata={"help": "Trials the search runs in all (default 10)."})
    workers: int | None = field(default=None, metadata={"help": "Workers pulling trials from one storage."})
    storage: str | None = field(default=None, metadata={"help": f"The optuna storage URL the workers share (default: "
                                                               f"${STORAGE_VARIABLE}, else a journal file beside the "
                                                               "study)."})
    study_name: str | None = field(default=None, metadata={"help": "The search's name in its storage."})
    heartbeat_interval: int | None = field(default=None, metadata={"help": "Seconds between a worker's heartbeats "
                                                                           "(default 60)."})
    worker: int | None = field(default=None, metadata={"help": "Set by the study in a worker process: its index."})


@dataclass
class SlurmOptions:
    slurm_partition: str | None = field(default=None, metadata={"help": "The jobs' partition."})
    slurm_account: str | None = field(default=None, metadata={"help": "The account the jobs are charged to."})
    slurm_qos: str | None = field(default=None, metadata={"help": "The jobs' quality of service."})
    slurm_time: str | None = field(default=None, metadata={"help": "Each job's time limit: 04:00:00, 2-00:00:00."})
    gpus_per_run: int | None = field(default=None, metadata={"help": "GPUs per run (default: num_processes)."})
    cpus_per_run: int | None = field(default=None, metadata={"help": "CPUs per run."})
    mem_per_run: str | None = field(default=None, metadata={"help": "Memory per run: 32G."})
    slurm_signal: int | None = field(default=None, metadata={"help": "Seconds before the time limit at which a job "
                                                                     "saves a checkpoint and is requeued."})
    slurm_option: list[str] = field(default_factory=list, metadata={"help": "More sbatch options, KEY=VALUE as sbatch "
                                                                            "spells them without dashes: "
                                                                            "constraint=a100."})
    detach: bool = field(default=False, metadata={"help": "Submit the jobs and return; --status shows them later."})
    status: bool = field(default=False, metadata={"help": "Show the study's jobs and write the table of those done."})


def _integers(flag: str, text: str) -> list[int]:
    try:
        values = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise BadInputError(f"{flag} {text}: expected whole numbers separated by commas, e.g. {flag} 42,43,44.") \
            from None
    if not values:
        raise BadInputError(f"{flag} needs at least one number, e.g. {flag} 42,43,44.")
    return values


def _at_least(flag: str, value: int | None, least: int) -> int | None:
    if value is not None and value < least:
        raise BadInputError(f"{flag} {value}: give one whole number, {least} or more.")
    return value


def slurm_resources(options: SlurmOptions) -> SlurmResources:
    """The Slurm flags as the job script's `#SBATCH` lines will hold them; a value that could end such a line
    (a control character) is refused, naming its flag."""
    for item in dataclasses.fields(SlurmOptions):
        value = getattr(options, item.name)
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str):
                refuse_control_characters(text, f"--{item.name}")
    extra = {}
    for item in options.slurm_option:
        match = SLURM_OPTION.match(item)
        if match is None:
            raise BadInputError(f"--slurm_option {item!r}: give KEY=VALUE as sbatch spells it without the dashes, "
                                "e.g. --slurm_option constraint=a100.")
        extra[match["key"].replace("_", "-")] = match["value"]
    resources = SlurmResources()
    resources.partition = options.slurm_partition
    resources.account = options.slurm_account
    resources.qos = options.slurm_qos
    resources.time = options.slurm_time or resources.time
    if options.gpus_per_run is not None:
        resources.gpus_per_run = _at_least("--gpus_per_run", options.gpus_per_run, 0)
    if options.cpus_per_run is not None:
        resources.cpus_per_run = _at_least("--cpus_per_run", options.cpus_per_run, 1)
    resources.mem_per_run = options.mem_per_run
    if options.slurm_signal is not None:
        resources.signal_seconds = _at_least("--slurm_signal", options.slurm_signal, 1)
    resources.options = extra
    return resources


def check_forwarded_flags(study: StudyArguments) -> None:
    """Every flag the study passes on must be one its runs' recipes take: a misspelt flag stops the study here, in
    one line, instead of failing every run in its log. A recipe outside the package (a script's path) is not
    asked; its runs say it themselves."""
    flags = [item.split("=", 1)[0] for item in study.forwarded if item.startswith("--")]
    if not flags:
        return
    for recipe in sorted({resolve_recipe(config)[0].resolve() for config in study.configs}):
        if recipe.stem not in registry.recipe_names() or registry.recipe_path(recipe.stem).resolve() != recipe:
            continue
        known = registry.load(recipe.stem).option_strings()
        unknown = [flag for flag in flags if flag not in known]
        if unknown:
            raise BadInputError(f"{', '.join(unknown)}: neither a study option nor one of recipe {recipe.stem}'s; "
                                f"{program_name()} --help lists the study's, hf-tasks run {recipe.stem} --help the "
                                "recipe's.")


def parse_study_args(argv: list[str]) -> StudyArguments:
    """Configs first (files, or packaged configs by name: farstail/tiny), then the study's own options (parsed
    like a recipe's: `hf_tasks.parsing.parse_options`); every other flag is forwarded to every run."""
    words, rest = leading_words(argv)
    configs = [Path(word) for word in words]
    (options, searching, slurm), forwarded = parse_options(StudyOptions, SearchOptions, SlurmOptions, args=rest,
                                                           description=__doc__, usage=USAGE, forward_unknown=True)
    bases = [path for path in configs if path.name == SHARED_BASE_NAME]
    if bases:
        print(f"[study] passing over {', '.join(map(str, bases))}: shared by the other configs, not an experiment",
              flush=True)
        configs = [path for path in configs if path.name != SHARED_BASE_NAME]
    if not configs:
        raise BadInputError(f"Give the experiment configs first: {program_name()} a.yaml b.yaml --output_dir DIR ...")
    # A packaged config may be named: farstail/tiny.
    configs = [path if path.is_file() else registry.find_config(str(path)) for path in configs]
    if options.output_dir is None:
        raise BadInputError("Give --output_dir for the study (each run goes to a folder inside it).")
    refuse_control_characters(options.output_dir, "--output_dir")  # it reaches job scripts and names
    if options.parallel is not None and options.devices is not None:
        raise BadInputError("Give --devices (one run per GPU) or --parallel N (runs at once on CPU), not both.")
    seeds = _integers("--seeds", options.seeds) if options.seeds is not None else None
    if seeds and any(item.split("=")[0] == "--seed" for item in forwarded):
        raise BadInputError("--seed and --seeds both given: keep --seeds (each config runs once per seed).")
    search = Path(searching.search) if searching.search is not None else None
    if search is not None and not search.is_file():
        raise BadInputError(f"--search {search}: no such file.")
    if search is not None and len(configs) > 1 and searching.study_name is not None:
        raise BadInputError(f"--study_name names one search; {len(configs)} configs run one search each (named "
                            "after their folders): drop --study_name, or give one config.")
    for name in ("trials", "storage", "workers", "study_name", "heartbeat_interval"):
        if getattr(searching, name) is not None and search is None:
            raise BadInputError(f"--{name} needs --search space.yaml (the hyperparameters to search).")
    executor = options.executor
    if executor not in EXECUTORS:
        raise BadInputError(f"--executor {executor}: give local (this machine, the default) or slurm.")
    slurm_given = sorted(f"--{item.name}" for item in dataclasses.fields(SlurmOptions)
                         if item.name not in ("detach", "status")
                         and getattr(slurm, item.name) not in (None, []))
    if slurm_given and executor != "slurm":
        raise BadInputError(f"{', '.join(slurm_given)}: Slurm resources need --executor slurm.")
    if slurm.detach and executor != "slurm":
        raise BadInputError("--detach needs --executor slurm (local runs end with the command that started them).")
    if executor == "slurm" and (options.devices is not None or options.parallel is not None):
        raise BadInputError("--devices/--parallel place runs on this machine; with --executor slurm give "
                            "--gpus_per_run (or num_processes in the config) instead.")
    devices = [item.strip() for item in options.devices.split(",") if item.strip()] \
        if options.devices is not None else None
    return StudyArguments(
        configs=configs,
        output_dir=Path(options.output_dir),
        launcher=shlex.split(options.launcher) if options.launcher is not None else [sys.executable],
        columns=[name for name in (options.columns or "").split(",") if name],
        parallel=_at_least("--parallel", options.parallel, 1) or 1,
        devices=devices,
        seeds=seeds,
        search=search,
        trials=_at_least("--trials", searching.trials, 1) or 10,
        forwarded=forwarded,
        executor=executor,
        detach=slurm.detach,
        status=slurm.status,
        slurm=slurm_resources(slurm),
        storage=searching.storage or os.environ.get(STORAGE_VARIABLE),
        workers=_at_least("--workers", searching.workers, 1),
        study_name=searching.study_name,
        heartbeat_interval=_at_least("--heartbeat_interval", searching.heartbeat_interval, 1) or 60,
        worker=searching.worker,
        baseline=options.baseline,
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
    check_forwarded_flags(study)
    if study.executor == "slurm":
        from hf_tasks.study.slurm import check_slurm

        check_slurm(study.slurm)
    if study.search is not None:
        from hf_tasks.study.search import search, search_each

        return search(study, argv) if len(study.configs) == 1 else search_each(study, argv)
    runs = plan(study)
    command = shown([*program_name().split(), *argv])
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
