"""`--search space.yaml --trials N`: an optuna search in which every trial is one recipe run, launched
like any study run (so a trial may use several processes or GPUs, and trials run side by side).

    objective: eval_accuracy          # a key of the runs' results.json
    direction: maximize               # optional: maximize, or minimize (the default for names ending in loss)
    parameters:                       # any recipe argument
      learning_rate: {low: 1.0e-5, high: 1.0e-3, log: true}
      num_train_epochs: {low: 1, high: 4}           # whole numbers: an integer range
      warmup_steps: {low: 0.0, high: 0.2}
      per_device_train_batch_size: [8, 16, 32]      # a list: one of these

Pruning reads each running trial's evaluations from its newest complete checkpoint (trainer_state.json),
so it acts when the config evaluates and saves every epoch (`eval_strategy: epoch`, `save_strategy:
epoch`); a pruned trial gets SIGTERM, which stops the recipe cleanly.

`--workers W` workers (local processes, or Slurm jobs with `--executor slurm`) pull trials from one optuna
study kept in `--storage` (see `hf_tasks.study.storage`; by default a journal file beside the study), so
running the command again continues the search. Exactly N trials finish in all: a worker counts the trials
numbered before the one it was just given and gives it back (failed, marked surplus) when N are already
taken; a trial whose worker died is retried by the next worker under the same run folder, so it resumes
from its newest checkpoint. Any worker, and the command that started them, writes `search.csv` (one row
per trial), `search.png` (objective per trial, best so far) and `best.yaml`, the best trial's resolved
config, which reruns it: `python <recipe> --config best.yaml`, from the storage; and the expected best
score after n = 1..N trials with its band (`search_expected_max.csv` and `.png`, `hf_tasks.study.expected_max`).
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from hf_tasks.errors import BadInputError
from hf_tasks.files import atomic_path, read_json, write_atomic, write_with
from hf_tasks.launch import take_option
from hf_tasks.run_folder import newest_complete_checkpoint
from hf_tasks.secrets import redact_arguments, redact_mapping
from hf_tasks.study.dashboard import log_study
from hf_tasks.study.expected_max import curve, write_curves
from hf_tasks.study.runs import (
    STORAGE_VARIABLE,
    Queue,
    Run,
    StudyArguments,
    make_run,
    secrets_to_environment,
    study_trackio,
)
from hf_tasks.study.storage import default_study_name, open_storage, storage_spec

#: A trial given back because N were already taken: failed, and left out of every count and report.
SURPLUS = "hf_tasks:surplus"
#: A trial whose recipe failed (twice): it counts as one of the N, unlike a trial retried after its worker died.
RUN_FAILED = "run_failed"
WAIT_SECONDS = 1.0


def read_space(path: Path) -> tuple[str, str, dict[str, Any]]:
    """The objective, its direction and the parameters of a search space file, checked before any trial."""
    try:
        space = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise BadInputError(f"--search {path}: not a readable YAML file ({' '.join(str(error).split())}); fix "
                            "it.") from None
    if not isinstance(space, dict) or not isinstance(space.get("objective"), str):
        raise BadInputError(f"--search {path}: give `objective: <metric in results.json>` (e.g. eval_accuracy).")
    parameters = space.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise BadInputError(f"--search {path}: give `parameters:`, a mapping of recipe arguments to ranges or lists.")
    for name, spec in parameters.items():
        if isinstance(spec, list) and spec:
            continue
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (TypeError, KeyError, ValueError):
            raise BadInputError(f"--search {path}: parameter {name}: give {{low: A, high: B}} (numbers) or a list of "
                                "choices.") from None
        if low > high:
            raise BadInputError(f"--search {path}: parameter {name}: low {low} is above high {high}.")
        if spec.get("log") and low <= 0:
            raise BadInputError(f"--search {path}: parameter {name}: log: true needs low above 0 (got {low}); raise "
                                "low or drop log.")
    direction = space.get("direction", "minimize" if space["objective"].endswith("loss") else "maximize")
    if direction not in ("maximize", "minimize"):
        raise BadInputError(f"--search {path}: direction: {direction!r} must be maximize or minimize.")
    return space["objective"], direction, parameters


def suggest(trial, parameters: dict[str, Any]) -> dict[str, Any]:
    values = {}
    for name, spec in parameters.items():
        if isinstance(spec, list):
            values[name] = trial.suggest_categorical(name, spec)
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            values[name] = trial.suggest_int(name, spec["low"], spec["high"], log=bool(spec.get("log", False)))
        else:
            values[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                               log=bool(spec.get("log", False)))
    return values


def evaluations(run: Run, objective: str) -> list[float]:
    """The objective at each evaluation the trial has checkpointed so far."""
    checkpoint = newest_complete_checkpoint(run.run_dir)
    state = read_json(checkpoint / "trainer_state.json") if checkpoint is not None else None
    if not isinstance(state, dict):
        return []  # none yet, or one being written: nothing new to report
    return [entry[objective] for entry in state.get("log_history", []) if objective in entry]


def plot_search(rows: list[dict[str, Any]], objective: str, direction: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    done = [row for row in rows if row["state"] == "COMPLETE"]
    pruned = [row for row in rows if row["state"] == "PRUNED" and row[objective] != ""]
    axis.scatter([row["trial"] for row in done], [row[objective] for row in done], label="finished")
    axis.scatter([row["trial"] for row in pruned], [row[objective] for row in pruned], marker="x",
                 label="pruned (last evaluation)")
    best, best_so_far = None, []
    for row in done:
        value = row[objective]
        best = value if best is None or (value > best if direction == "maximize" else value < best) else best
        best_so_far.append(best)
    axis.step([row["trial"] for row in done], best_so_far, where="post", color="gray", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel(f"{objective} ({direction})")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=120, format="png")
    plt.close(figure)




def counted(trial: optuna.trial.FrozenTrial) -> bool:
    """Whether a trial is one of the search's N: not a surplus one, nor one failed because its worker died
    (its retry counts instead)."""
    return trial.state != TrialState.FAIL or RUN_FAILED in trial.user_attrs


class SurplusTrial(Exception):
    """The trial a worker was given is beyond the N the search asks for."""


class RunFailed(Exception):
    """The trial's recipe run failed; the trial is recorded as failed and the worker goes on."""


def work(tuner: optuna.Study, n_trials: int, objective: Callable[[optuna.Trial], float],
         on_trial_end: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None) -> int:
    """One worker's share of the search: take trials from the shared study until N have finished, waiting
    (and failing the trials of dead workers, which enqueues their retries) while others finish the last
    ones. Returns how many trials this worker ran."""
    ran = 0

    def claim_then_run(trial: optuna.Trial) -> float:
        nonlocal ran
        # Trials are numbered 0, 1, ... in the order they were created: those before this one that count are
        # all of them but the failed ones that do not (fetching only failed trials keeps the claim cheap).
        failed = tuner.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if trial.number - sum(not counted(other) for other in failed if other.number < trial.number) >= n_trials:
            trial.set_user_attr(SURPLUS, True)
            tuner.stop()
            raise SurplusTrial(f"the search has its {n_trials} trials already; this one is given back unrun")
        ran += 1
        return objective(trial)

    callbacks = [optuna.study.MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))]
    if on_trial_end is not None:
        callbacks.append(on_trial_end)
    while True:
        optuna.storages.fail_stale_trials(tuner)
        trials = tuner.get_trials(deepcopy=False)
        taken = [trial for trial in trials if counted(trial)]
        if sum(trial.state.is_finished() for trial in taken) >= n_trials:
            return ran
        if len(taken) >= n_trials and not any(trial.state == TrialState.WAITING for trial in trials):
            time.sleep(WAIT_SECONDS)  # the last trials run elsewhere; stay in case a worker dies
            continue
        tuner.optimize(claim_then_run, callbacks=callbacks, catch=(SurplusTrial, RunFailed))


def open_search(study: StudyArguments) -> tuple[optuna.Study, str, str, dict[str, Any]]:
    """The shared optuna study (created by the first to come), its objective, direction and parameters."""
    objective, direction, parameters = read_space(study.search)
    clash = sorted(name for name in parameters if any(item.split("=")[0] == f"--{name}" for item in study.forwarded))
    if clash:
        raise BadInputError(f"--search {study.search} tunes {clash}, which the command line also sets; "
                            "drop those flags.")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = storage_spec(study.storage, study.output_dir, study.heartbeat_interval)
    storage = open_storage(spec)
    name = study.study_name or default_study_name(study.output_dir)
    tuner = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                pruner=optuna.pruners.MedianPruner())
    if tuner.direction.name.lower() != direction:
        raise BadInputError(f"--storage {spec.shown}: study {name!r} there maximises or minimises otherwise than "
                            f"--search {study.search} asks ({direction}); give another --study_name.")
    return tuner, objective, direction, parameters


def trial_run_name(config: Path, trial: optuna.trial.FrozenTrial) -> str:
    """A retried trial keeps the folder of the trial it retries, so it resumes from that run's checkpoint."""
    original = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
    return f"{config.stem}-trial{trial.number if original is None else original}"


def write_reports(study: StudyArguments, tuner: optuna.Study, objective: str, direction: str,
                  parameters: dict[str, Any]) -> bool:
    """search.csv, search.png and best.yaml from the storage; False when no trial has finished yet."""
    config = study.configs[0]
    rows = []
    for trial in tuner.get_trials():
        if trial.user_attrs.get(SURPLUS):
            continue
        last = trial.value if trial.value is not None else (
            trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else "")
        rows.append({"trial": trial.number, "state": trial.state.name, objective: last, **trial.params,
                     "run": trial_run_name(config, trial)})

    def write_rows(handle) -> None:
        writer = csv.DictWriter(handle, fieldnames=["trial", "state", objective, *parameters, "run"])
        writer.writeheader()
        writer.writerows(rows)

    write_with(study.output_dir / "search.csv", write_rows)
    plot_search(rows, objective, direction, study.output_dir / "search.png")
    complete = tuner.get_trials(states=(TrialState.COMPLETE,))
    if not complete:
        return False
    write_curves([curve([trial.value for trial in complete], make_run(config, study.output_dir).group, objective,
                        direction == "maximize")], study.output_dir)
    best_trial = tuner.best_trial
    best_run = study.output_dir / trial_run_name(config, best_trial)
    best = redact_mapping(yaml.safe_load((best_run / "config.yaml").read_text(encoding="utf-8")))
    best["output_dir"] = str(study.output_dir / "best")
    recipe = make_run(config, study.output_dir).recipe
    header = (f"# Best of {len(complete)} finished trials of `--search {study.search}`: {objective} = "
              f"{best_trial.value} (trial {best_trial.number}, {best_run}).\n"
              f"# Parameters: {best_trial.params}\n"
              f"# Rerun: python {recipe} --config {study.output_dir / 'best.yaml'}\n")
    write_atomic(study.output_dir / "best.yaml", header + yaml.safe_dump(best, allow_unicode=True, sort_keys=False))
    return True


def worker_queue(study: StudyArguments, index: int, num_processes: int) -> Queue:
    """The queue one worker runs its trials through: its share of --devices, or of the CPU's threads."""
    devices = None
    if study.devices:
        share = len(study.devices) // study.workers
        devices = study.devices[index * share:(index + 1) * share]
    queue = Queue(study.output_dir, launcher=study.launcher, forwarded=study.forwarded, devices=devices,
                  parallel=num_processes, group=study.output_dir.resolve().name)
    if not devices and "OMP_NUM_THREADS" not in os.environ:
        queue.env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // (study.workers * num_processes)))
    queue.env.pop(STORAGE_VARIABLE, None)  # the recipe has no use for the database password
    return queue


def run_worker(study: StudyArguments, index: int) -> int:
    """`--worker i`: run trials of the shared search until it has its N."""
    tuner, objective, direction, parameters = open_search(study)
    config = study.configs[0]
    queue = worker_queue(study, index, make_run(config, study.output_dir).num_processes)
    where = f"{socket.gethostname()}:{os.getpid()}"

    def run_trial(trial: optuna.Trial) -> float:
        frozen = next(other for other in tuner.get_trials(deepcopy=False) if other.number == trial.number)
        trial.set_user_attr("worker", where)
        run = make_run(config, study.output_dir, name=trial_run_name(config, frozen),
                       overrides=suggest(trial, parameters))
        reported = 0

        def should_prune(_run: Run) -> bool:
            nonlocal reported
            values = evaluations(run, objective)
            for step in range(reported, len(values)):
                trial.report(values[step], step)
            reported = len(values)
            return bool(values) and trial.should_prune()

        queue.add(run)
        queue.run_all(lambda _run: None, should_stop=should_prune)
        if run.status == "pruned":
            raise optuna.TrialPruned
        if run.status in ("ok", "reused") and objective in run.results:
            return float(run.results[objective])
        print(f"[study] {run.name}: no {objective} in results ({run.status}); the trial counts as failed.", flush=True)
        trial.set_user_attr(RUN_FAILED, run.status)
        raise RunFailed(run.status)

    def report(_tuner, _trial) -> None:
        write_reports(study, tuner, objective, direction, parameters)

    ran = work(tuner, study.trials, run_trial, report)
    print(f"[study] worker {index} ({where}) ran {ran} trial(s); the search has its {study.trials}.", flush=True)
    return 0


def worker_command(study: StudyArguments, argv: list[str], index: int) -> list[str]:
    """The study's own command line as worker `index` runs it, without --storage or a secret flag: the URL (and
    its password) travels in HF_TASKS_STORAGE, secrets in their variables (`worker_environment`), never in a
    command line another user can read in `ps`."""
    _, kept, _ = secrets_to_environment({}, take_option(argv, "--storage")[1])
    return [sys.executable, "-m", "hf_tasks.study", *kept, "--worker", str(index)]


def worker_environment(study: StudyArguments) -> dict[str, str]:
    """Where the workers find the storage URL and the command line's secrets."""
    _, _, secrets = secrets_to_environment({}, study.forwarded)
    return {**secrets, **({STORAGE_VARIABLE: study.storage} if study.storage is not None else {})}


def start_local_workers(study: StudyArguments, argv: list[str]) -> list[subprocess.Popen]:
    """W worker processes on this machine, each in its own session (its recipe runs die with it when it is
    killed as a group); each one's output goes to `<output_dir>/worker-<i>.log`."""
    workers = []
    for index in range(study.workers):
        log = study.output_dir / f"worker-{index}.log"
        command = worker_command(study, argv, index)
        with log.open("a", encoding="utf-8") as handle:
            handle.write(f"[study] worker {index}: {' '.join(redact_arguments(command))}\n")
            handle.flush()
            workers.append(subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
                                            env={**os.environ, **worker_environment(study)}))
    return workers


def finished_scores(output_dir: Path, objective: str) -> list[float]:
    """The objective of every finished trial in a search's `search.csv`."""
    with (output_dir / "search.csv").open(encoding="utf-8", newline="") as handle:
        return [float(row[objective]) for row in csv.DictReader(handle) if row["state"] == "COMPLETE"]


def search_each(study: StudyArguments, argv: list[str]) -> int:
    """One search per config (`a.yaml b.yaml --search space.yaml`), each in `<output_dir>/<config's group>/` as
    if run alone, then one expected-max plot with a curve per config and the table of which stays ahead from
    which budget on (`hf_tasks.study.expected_max.write_curves`)."""
    objective, direction, _ = read_space(study.search)
    options = take_option(argv[len(study.configs):], "--output_dir")[1]
    study_trackio(os.environ, study.output_dir.resolve())  # every trial of every config in the study's project
    codes, curves = [], []
    for config in study.configs:
        group = make_run(config, study.output_dir).group
        folder = study.output_dir / group
        print(f"[study] search {len(codes) + 1} of {len(study.configs)}: {config} in {folder}", flush=True)
        codes.append(search(replace(study, configs=[config], output_dir=folder),
                            [str(config), *options, "--output_dir", str(folder)]))
        scores = finished_scores(folder, objective) if (folder / "search.csv").is_file() else []
        if scores:
            curves.append(curve(scores, group, objective, direction == "maximize"))
    if len(curves) > 1:
        written = write_curves(curves, study.output_dir)
        log_study(study.output_dir)
        print(f"[study] wrote {', '.join(str(path) for path in written)}", flush=True)
    return max(codes)


def search(study: StudyArguments, argv: list[str]) -> int:
    """Check the search, start its workers, wait for them and write the reports from the storage."""
    processes = make_run(study.configs[0], study.output_dir).num_processes
    if study.workers is None:  # as many trials at once as the study has room for
        study.workers = max(1, len(study.devices) // processes) if study.devices else study.parallel
    if study.devices and study.workers * processes > len(study.devices):
        raise BadInputError(f"--workers {study.workers} with trials of {processes} process(es) need "
                            f"{study.workers * processes} devices; --devices gives {len(study.devices)}.")
    if study.worker is not None:
        return run_worker(study, study.worker)
    tuner, objective, direction, parameters = open_search(study)  # bad input stops here, before any worker
    study.output_dir.mkdir(parents=True, exist_ok=True)
    if study.executor == "slurm":
        from hf_tasks.study.slurm import SlurmStudy

        jobs = SlurmStudy(study, worker_environment(study))
        if study.status:
            print(jobs.worker_status())
        else:
            jobs.submit_workers([worker_command(study, argv, index) for index in range(study.workers)])
            if not study.detach:
                jobs.wait_for_workers()
    elif not study.status:
        workers = start_local_workers(study, argv)
        try:
            codes = [worker.wait() for worker in workers]
        except KeyboardInterrupt:
            for worker in workers:
                worker.terminate()
            raise
        for index, code in enumerate(codes):
            if code != 0:
                print(f"[study] worker {index} ended with status {code}; see {study.output_dir}/worker-{index}.log",
                      flush=True)
    if not write_reports(study, tuner, objective, direction, parameters):
        print(f"[study] no trial finished yet; see the logs in {study.output_dir}.")
        return 0 if study.detach or study.status else 1
    log_study(study.output_dir)
    best = tuner.best_trial
    print(f"[study] best trial {best.number}: {objective} = {best.value} with {best.params}; "
          f"wrote {study.output_dir / 'best.yaml'}, search.csv, search.png and search_expected_max.csv/.png")
    return 0
