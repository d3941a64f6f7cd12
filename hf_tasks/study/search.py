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
epoch`); a pruned trial gets SIGTERM, which stops the recipe cleanly. The search is kept in
`<output_dir>/search.db`: running the command again continues it. It writes `search.csv` (one row per
trial), `search.png` (objective per trial, best so far) and `best.yaml`, the best trial's resolved
config, which reruns it: `python <recipe> --config best.yaml`.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import yaml

from hf_tasks.study.runs import Run, StudyArguments, last_complete_checkpoint, make_run, study_queue


def read_space(path: Path) -> tuple[str, str, dict[str, Any]]:
    """The objective, its direction and the parameters of a search space file, checked before any trial."""
    space = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(space, dict) or not isinstance(space.get("objective"), str):
        raise SystemExit(f"--search {path}: give `objective: <metric in results.json>` (e.g. eval_accuracy).")
    parameters = space.get("parameters")
    if not isinstance(parameters, dict) or not parameters:
        raise SystemExit(f"--search {path}: give `parameters:`, a mapping of recipe arguments to ranges or lists.")
    for name, spec in parameters.items():
        if isinstance(spec, list) and spec:
            continue
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (TypeError, KeyError, ValueError):
            raise SystemExit(f"--search {path}: parameter {name}: give {{low: A, high: B}} (numbers) or a list of "
                             "choices.") from None
        if low > high:
            raise SystemExit(f"--search {path}: parameter {name}: low {low} is above high {high}.")
    direction = space.get("direction", "minimize" if space["objective"].endswith("loss") else "maximize")
    if direction not in ("maximize", "minimize"):
        raise SystemExit(f"--search {path}: direction: {direction!r} must be maximize or minimize.")
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
    checkpoint = last_complete_checkpoint(run.run_dir)
    if checkpoint is None:
        return []
    history = json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8")).get("log_history", [])
    return [entry[objective] for entry in history if objective in entry]


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
    figure.savefig(path, dpi=120)
    plt.close(figure)


def search(study: StudyArguments) -> int:
    import optuna

    objective, direction, parameters = read_space(study.search)
    clash = sorted(name for name in parameters if any(item.split("=")[0] == f"--{name}" for item in study.forwarded))
    if clash:
        raise SystemExit(f"--search {study.search} tunes {clash}, which the command line also sets; drop those flags.")
    config = study.configs[0]
    study.output_dir.mkdir(parents=True, exist_ok=True)
    tuner = optuna.create_study(storage=f"sqlite:///{study.output_dir.resolve() / 'search.db'}", study_name="search",
                                direction=direction, load_if_exists=True, pruner=optuna.pruners.MedianPruner())
    for stale in tuner.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
        tuner.tell(stale.number, state=optuna.trial.TrialState.FAIL)  # its study was stopped mid-trial
    counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    to_ask = max(0, study.trials - len(tuner.get_trials(states=counted)))
    trial_of: dict[str, Any] = {}
    reported: dict[str, int] = {}

    def next_trial() -> Run | None:
        nonlocal to_ask
        if to_ask == 0:
            return None
        to_ask -= 1
        trial = tuner.ask()
        run = make_run(config, study.output_dir, name=f"{config.stem}-trial{trial.number}",
                       overrides=suggest(trial, parameters))
        trial_of[run.name] = trial
        return run

    def should_prune(run: Run) -> bool:
        trial, values = trial_of[run.name], evaluations(run, objective)
        for step in range(reported.get(run.name, 0), len(values)):
            trial.report(values[step], step)
        reported[run.name] = len(values)
        return bool(values) and trial.should_prune()

    def finished(run: Run) -> None:
        trial = trial_of[run.name]
        if run.status == "ok" and objective in run.results:
            tuner.tell(trial, run.results[objective])
        elif run.status == "pruned":
            tuner.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            print(f"[study] {run.name}: no {objective} in results ({run.status}); the trial counts as failed.")
            tuner.tell(trial, state=optuna.trial.TrialState.FAIL)

    study_queue(study).run_all(finished, refill=next_trial, should_stop=should_prune)

    rows = []
    for trial in tuner.get_trials():
        last = trial.value if trial.value is not None else (
            trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else "")
        rows.append({"trial": trial.number, "state": trial.state.name, objective: last, **trial.params,
                     "run": f"{config.stem}-trial{trial.number}"})
    with (study.output_dir / "search.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["trial", "state", objective, *parameters, "run"])
        writer.writeheader()
        writer.writerows(rows)
    plot_search(rows, objective, direction, study.output_dir / "search.png")
    complete = tuner.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        print(f"[study] no trial finished; see the logs in {study.output_dir}.")
        return 1
    best_run = study.output_dir / f"{config.stem}-trial{tuner.best_trial.number}"
    best = yaml.safe_load((best_run / "config.yaml").read_text(encoding="utf-8"))
    best["output_dir"] = str(study.output_dir / "best")
    recipe = make_run(config, study.output_dir).recipe
    header = (f"# Best of {len(complete)} finished trials of `--search {study.search}`: {objective} = "
              f"{tuner.best_value} (trial {tuner.best_trial.number}, {best_run}).\n"
              f"# Parameters: {tuner.best_params}\n"
              f"# Rerun: python {recipe} --config {study.output_dir / 'best.yaml'}\n")
    (study.output_dir / "best.yaml").write_text(
        header + yaml.safe_dump(best, allow_unicode=True, sort_keys=False), encoding="utf-8")
    print(f"[study] best trial {tuner.best_trial.number}: {objective} = {tuner.best_value} with {tuner.best_params}; "
          f"wrote {study.output_dir / 'best.yaml'}, search.csv and search.png")
    return 0
