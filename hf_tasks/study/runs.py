"""One run of a study: its recipe, its folder, the command that launches it, and the queue that runs
many of them at once on a set of devices (or CPU slots)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hf_tasks import registry
from hf_tasks.config_files import config_values
from hf_tasks.errors import BAD_INPUT_EXIT, REFUSAL_FILE_VARIABLE, BadInputError, refuse_control_characters
from hf_tasks.files import read_json, write_atomic
from hf_tasks.launch import BASE_PORT, launch_prefix
from hf_tasks.run_folder import newest_complete_checkpoint
from hf_tasks.secrets import redact_mapping, secret_field, shown

WEIGHT_SUFFIXES = (".safetensors", ".bin")
POLL_SECONDS = 1.0
#: The storage URL when --storage is not given; search workers get theirs this way, so no command line, job
#: script or pickled job holds a database password.
STORAGE_VARIABLE = "HF_TASKS_STORAGE"
#: Where a run's process finds a secret the study took out of its config and command line (nothing the study
#: writes or prints holds it): the runner itself moves --hub_token into HF_TOKEN, and wandb reads WANDB_API_KEY.
SECRET_VARIABLES = {"hub_token": "HF_TOKEN", "hf_token": "HF_TOKEN", "token": "HF_TOKEN",
                    "push_to_hub_token": "HF_TOKEN", "wandb_api_key": "WANDB_API_KEY"}


def resolve_recipe(config: Path) -> tuple[Path, dict[str, Any]]:
    """The recipe script of `config` and the config's values, its bases merged in (without a `recipe:` key):
    the `recipe:` key's recipe (a name, `farstail`, or a script's path), else the recipe whose folder
    `configs/<recipe>/` holds the config (the script beside that `configs/` when there is one)."""
    values = config_values(config)
    named = values.pop("recipe", None)
    if named is not None:
        if str(named) in registry.recipe_names():
            return registry.recipe_path(str(named)), values
        for candidate in (Path(named), config.parent / named):
            if candidate.is_file():
                return candidate, values
        raise BadInputError(f"{config}: recipe: {named} is neither a recipe ({', '.join(registry.recipe_names())}) "
                            "nor a file (relative to the current folder or the config).")
    for folder in config.resolve().parents:
        if folder.parent.name == "configs":
            script = folder.parent.parent / f"{folder.name}.py"
            if script.is_file():
                return script, values
            if folder.name in registry.recipe_names():
                return registry.recipe_path(folder.name), values
            break
    raise BadInputError(
        f"{config}: cannot tell its recipe. Add a `recipe: <name>` key (one of {', '.join(registry.recipe_names())}, "
        "or a path to a recipe script), or put it under configs/<recipe>/."
    )


def weights_size_mb(run_dir: Path) -> float | None:
    """Size of the saved model weights in the run folder (checkpoints not counted)."""
    files = [path for path in run_dir.iterdir() if path.suffix in WEIGHT_SUFFIXES] if run_dir.is_dir() else []
    return round(sum(path.stat().st_size for path in files) / 2**20, 3) if files else None


@dataclass
class Run:
    """One launch of a recipe on one config (one seed, or one search trial)."""

    name: str
    group: str  # the config's name: runs of one config with different seeds are averaged together
    config: Path
    recipe: Path
    run_dir: Path
    # the recipe's arguments: the config's, the study's overrides (seed, trial parameters) applied
    values: dict[str, Any]
    num_processes: int = 1  # per node
    seed: int | None = None
    num_nodes: int = 1  # more than one only through Slurm
    status: str = "queued"
    results: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    process: subprocess.Popen | None = None
    slots: list[int] = field(default_factory=list)

    @property
    def log(self) -> Path:
        """The run's output, beside its folder (so the folder holds only what the recipe wrote)."""
        return self.run_dir.with_name(self.run_dir.name + ".log")

    @property
    def finished(self) -> bool:
        """results.json is there and whole: one a kill cut short means the run has not finished."""
        return isinstance(read_json(self.run_dir / "results.json"), dict)

    def read_results(self) -> None:
        self.results = read_json(self.run_dir / "results.json") or {}
        if self.results.get("model_size_mb") is None:
            size = weights_size_mb(self.run_dir)
            if size is not None:
                self.results["model_size_mb"] = size


def make_run(config: Path, output_dir: Path, *, seed: int | None = None, name: str | None = None,
             overrides: dict[str, Any] | None = None) -> Run:
    recipe, values = resolve_recipe(config)
    # the name becomes a folder, a table row and a job's name: one line of plain text
    group = refuse_control_characters(f"{recipe.stem}-{config.stem}", f"config {str(config)!r}")
    num_processes = values.pop("num_processes", 1)
    if not isinstance(num_processes, int) or num_processes < 1:
        raise BadInputError(f"{config}: num_processes: {num_processes!r} must be a whole number of processes, "
                            "1 or more.")
    num_nodes = values.pop("num_nodes", 1)
    if not isinstance(num_nodes, int) or num_nodes < 1:
        raise BadInputError(f"{config}: num_nodes: {num_nodes!r} must be a whole number of nodes, 1 or more.")
    values = {**values, **(overrides or {}), **({"seed": seed} if seed is not None else {})}
    name = name or (group if seed is None else f"{group}-seed{seed}")
    return Run(name, group, config, recipe, output_dir / name, values, num_processes, seed, num_nodes)


def secrets_to_environment(values: dict[str, Any], forwarded: list[str]) -> tuple[dict[str, Any], list[str],
                                                                                   dict[str, str]]:
    """The run's config values and forwarded flags without secrets, and the environment that carries them; a
    secret on the command line wins over the config's, under every executor."""
    environment = {SECRET_VARIABLES[name]: str(value) for name, value in values.items()
                   if name in SECRET_VARIABLES and value}
    kept_values = {name: value for name, value in values.items() if name not in SECRET_VARIABLES}
    kept_flags, rest = [], list(forwarded)
    while rest:
        item = rest.pop(0)
        field_name = secret_field(item)
        if field_name is not None:
            _, has_value, inline = item.partition("=")
            value = inline if has_value else (rest.pop(0) if rest else "")
            environment[SECRET_VARIABLES[field_name]] = value
        else:
            kept_flags.append(item)
    return kept_values, kept_flags, environment


def study_trackio(env: MutableMapping[str, str], study_dir: Path) -> None:
    """With --report_to trackio, every run of a study goes to one trackio project named after the study, its
    database inside the study folder, unless the user's environment (or the search of several configs, which
    sets them for all its searches) says otherwise."""
    # hf_tasks.trackers loads transformers' tracker integrations (seconds, and a line on stdout under
    # WANDB_MODE=offline): only a study that tracks pays for them, not its --help or a plain table.
    from hf_tasks.trackers import TRACKIO_PROJECT_VARIABLE

    if not env.get("TRACKIO_DIR"):
        env["TRACKIO_DIR"] = str(study_dir / "trackio")
    if not env.get(TRACKIO_PROJECT_VARIABLE):
        env[TRACKIO_PROJECT_VARIABLE] = study_dir.name


def refusal_file(run: Run) -> Path:
    """Where the run's recipe leaves its one-line error when it refuses its input (`errors.REFUSAL_FILE_VARIABLE`),
    hidden beside the run's log; the study removes it before each attempt."""
    return run.log.with_name(f".{run.name}.refused")


def run_environment(env: dict[str, str], run: Run) -> dict[str, str]:
    """`env` for the run's recipe, in either queue: its trackio place (`study_trackio`) in the group of its
    config, and its `refusal_file`."""
    from hf_tasks.trackers import TRACKIO_GROUP_VARIABLE

    study_trackio(env, run.run_dir.parent.resolve())
    env[TRACKIO_GROUP_VARIABLE] = run.group
    env[REFUSAL_FILE_VARIABLE] = str(refusal_file(run).resolve())
    return env


def recipe_config(run: Run, output_dir: Path) -> Path:
    """The config the recipe is given: the user's file when it holds exactly the run's values, else
    `<output_dir>/configs/<run>.yaml` (without the study's keys such as recipe and num_processes, with this
    run's seed and trial parameters, its bases merged in, and no secrets), written atomically."""
    values = redact_mapping(run.values)
    if run.values == config_values(run.config) and values == run.values:
        return run.config
    config = output_dir / "configs" / f"{run.name}.yaml"
    write_atomic(config, yaml.safe_dump(values, allow_unicode=True, sort_keys=False))
    return config


def resume_flags(run: Run) -> list[str]:
    """How to relaunch into a folder that already holds the recipe's files but no results.json (a run
    that was stopped or failed): from its newest complete checkpoint, or, when it has none, afresh over
    what the failed attempt left (the folder is the study's own, made for this run)."""
    if not run.run_dir.is_dir() or not any(run.run_dir.iterdir()):
        return []
    checkpoint = newest_complete_checkpoint(run.run_dir)
    return ["--resume_from_checkpoint", str(checkpoint)] if checkpoint else ["--overwrite_output_dir", "true"]


def launch_command(run: Run, launcher: list[str], config: Path, forwarded: list[str], on_devices: bool) -> list[str]:
    """The recipe's command line: one process through `launcher`, or several over the run's slots (accelerate
    on GPUs; torchrun on CPU, where accelerate would ask for a GPU)."""
    if run.num_processes == 1:
        prefix = launcher
    else:
        prefix = launch_prefix(run.num_processes, on_gpus=on_devices, port=BASE_PORT + run.slots[0])
    return [*prefix, str(run.recipe), "--config", str(config), "--output_dir", str(run.run_dir), *forwarded,
            *resume_flags(run)]


class Queue:
    """Runs waiting, running and done. A run takes as many free slots as it has processes; with devices,
    its slots become its CUDA_VISIBLE_DEVICES. Finished runs (results.json present) are reused, stopped
    ones continue from their checkpoint, and a failed run is tried once more."""

    def __init__(self, output_dir: Path, *, launcher: list[str], forwarded: list[str],
                 devices: list[str] | None, parallel: int, group: str):
        self.output_dir = output_dir
        self.launcher = launcher
        self.forwarded = forwarded
        self.devices = devices
        self.slot_count = len(devices) if devices else parallel
        self.free = list(range(self.slot_count))
        self.waiting: list[Run] = []
        self.running: list[Run] = []
        self.env = dict(os.environ)
        # The recipe imports hf_tasks from this checkout even when the package is not installed.
        package_root = str(Path(__file__).resolve().parents[2])
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, self.env.get("PYTHONPATH")]))
        # With --report_to wandb, every run of the study lands in one wandb group.
        self.env.setdefault("WANDB_RUN_GROUP", group)
        if not devices and "OMP_NUM_THREADS" not in self.env:
            # Runs side by side on CPU share the cores instead of each starting one thread per core.
            self.env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // parallel))

    def add(self, run: Run) -> None:
        if run.num_nodes > 1:
            raise BadInputError(f"{run.config}: num_nodes: {run.num_nodes} needs a cluster: add --executor slurm.")
        if run.num_processes > self.slot_count:
            raise BadInputError(f"{run.config}: num_processes: {run.num_processes} needs {run.num_processes} devices "
                                f"but the study has {self.slot_count}; give more with --devices/--parallel or "
                                "lower it.")
        self.waiting.append(run)

    def run_all(self, on_finish: Callable[[Run], None], *, refill: Callable[[], Run | None] | None = None,
                should_stop: Callable[[Run], bool] | None = None) -> None:
        """Launch runs as slots free up until none is left. `refill` supplies a new run when the queue is empty
        (a search's next trial); `should_stop` is asked about each running run at every poll (pruning), and
        a run it stops is sent SIGTERM, which makes the recipe save a checkpoint and exit cleanly."""
        while True:
            self._start_what_fits(refill)
            if not self.running:
                return
            time.sleep(POLL_SECONDS)
            for run in list(self.running):
                if should_stop is not None and run.status == "running" and should_stop(run):
                    run.status = "pruned"
                    run.process.terminate()
                code = run.process.poll()
                if code is None:
                    continue
                self.running.remove(run)
                self.free += run.slots
                self._settle(run, code)
                if run.status == "retry":
                    self.waiting.insert(0, run)
                else:
                    on_finish(run)

    def _start_what_fits(self, refill: Callable[[], Run | None] | None) -> None:
        while True:
            if not self.waiting and refill is not None and self.free:
                new = refill()
                if new is not None:
                    self.add(new)
            fitting = next((run for run in self.waiting if run.num_processes <= len(self.free)), None)
            if fitting is None:
                return
            self.waiting.remove(fitting)
            if fitting.finished and fitting.attempts == 0:
                fitting.status = "reused"
                fitting.read_results()
                print(f"[study] {fitting.name}: reused {fitting.run_dir / 'results.json'}", flush=True)
                continue
            self._start(fitting)

    def _start(self, run: Run) -> None:
        self.free.sort()
        run.slots, self.free = self.free[: run.num_processes], self.free[run.num_processes:]
        run.attempts += 1
        _, forwarded, secret_env = secrets_to_environment(run.values, self.forwarded)
        command = launch_command(run, self.launcher, recipe_config(run, self.output_dir), forwarded,
                                 self.devices is not None)
        env = run_environment({**self.env, **secret_env}, run)
        if self.devices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.devices[slot] for slot in run.slots)
        where = f" on device(s) {env['CUDA_VISIBLE_DEVICES']}" if self.devices else ""
        print(f"[study] {run.name}: attempt {run.attempts}{where}: {shown(command)}", flush=True)
        run.log.parent.mkdir(parents=True, exist_ok=True)
        refusal_file(run).unlink(missing_ok=True)
        with run.log.open("a", encoding="utf-8") as log:
            log.write(f"[study] attempt {run.attempts}{where}: {shown(command)}\n")
            log.flush()
            run.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        run.status = "running"
        self.running.append(run)

    def _settle(self, run: Run, code: int) -> None:
        if run.status == "pruned":
            pass
        elif code == 0 and run.finished:
            run.status = "ok"
            run.read_results()
        elif code == BAD_INPUT_EXIT or refusal_file(run).is_file():
            run.status = refused_status(run)
        elif run.attempts < 2:
            run.status = "retry"
        else:
            why = f"exit {code}" if code != 0 else "no results.json"
            run.status = f"failed twice ({why}; see {run.log.name})"
        print(f"[study] {run.name}: {run.status}", flush=True)


def refused_status(run: Run) -> str:
    """The status of a run whose recipe refused its config, flags or data (its `refusal_file`, or exit 2), after
    saying what it said: another attempt would be refused the same way, so neither queue makes one."""
    print(f"[study] {run.name}: {refusal(run)}", flush=True)
    return f"refused its input (see {run.log.name})"


def refusal(run: Run) -> str:
    """The recipe's one-line error: from its `refusal_file`, else the last line of its log."""
    path = refusal_file(run)
    return path.read_text(encoding="utf-8").strip() if path.is_file() else last_line(run.log)


def last_line(path: Path) -> str:
    """The last line of a run's log that is not blank (what a failed run said last)."""
    lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()] \
        if path.is_file() else []
    return lines[-1].strip() if lines else "no log"


@dataclass
class SlurmResources:
    """What each Slurm job of the study asks for (flags named like Slurm's own)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time: str = "1-00:00:00"
    gpus_per_run: int = 0  # per node; a config's num_processes when not given
    cpus_per_run: int | None = None
    mem_per_run: str | None = None
    signal_seconds: int = 120  # the warning before the time limit: checkpoint, exit, requeue
    options: dict[str, str] = field(default_factory=dict)  # --slurm_option key=value, passed as --key=value


@dataclass
class StudyArguments:
    configs: list[Path]
    output_dir: Path
    launcher: list[str] = field(default_factory=lambda: [sys.executable])
    columns: list[str] = field(default_factory=list)
    parallel: int = 1
    devices: list[str] | None = None
    seeds: list[int] | None = None
    search: Path | None = None
    trials: int = 10
    forwarded: list[str] = field(default_factory=list)
    baseline: str | None = None  # the config the table compares the others with (default: the first)
    executor: str = "local"
    detach: bool = False
    status: bool = False
    slurm: SlurmResources = field(default_factory=SlurmResources)
    storage: str | None = None  # None: the default journal file beside the study
    workers: int | None = None  # None: as many as --devices (or --parallel) hold trials at once
    study_name: str | None = None
    heartbeat_interval: int = 60
    worker: int | None = None  # set in a worker process: its index


def study_queue(study: StudyArguments) -> Queue:
    return Queue(study.output_dir, launcher=study.launcher, forwarded=study.forwarded, devices=study.devices,
                 parallel=study.parallel, group=study.output_dir.resolve().name)
