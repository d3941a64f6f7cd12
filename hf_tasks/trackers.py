"""A run's figures and tables, sent to every tracker `--report_to` names, each through its own library's API.

The Trainer's own callbacks send the logged scalars (losses, metrics). What they cannot send, the run
folder holds once the run ends: figures (training curves, confusion matrices, any other PNG the task
drew) and tables (per-class precision/recall/F1, misclassified examples, QA errors). `Trackers`
sends those:

- TensorBoard: images (`add_image`) and Markdown text summaries (`add_text`), into the event folder
  the Trainer's TensorBoard callback wrote (or `output_dir/runs/...` when there was no training);
- MLflow: `log_image` and `log_table` (and config.yaml as an artifact), in the same MLflow run as the
  training metrics: the run is opened here before the Trainer is built, so the Trainer's callback logs
  into it rather than ending it after training and leaving the final evaluation to a run of its own;
- wandb: `wandb.Image`, `wandb.Table` and wandb's confusion-matrix plot, plus the results as the run's
  summary; the recipe's own arguments join the run's config when training starts (a script without a
  Trainer starts the wandb run itself);
- trackio: `trackio.Image` and `trackio.Table`, plus the results under `results/`, in the run the Trainer's
  metrics went to: transformers' trackio callback is swapped for `TrackioRun`, which names the run after its
  folder, puts it in the study's project and its config's group (`TRACKIO_PROJECT_VARIABLE`,
  `TRACKIO_GROUP_VARIABLE`, set by the study) with the recipe's arguments as its config, and publishes
  nothing: transformers' callback would deploy a static Space of the project when the model is pushed, which
  it now does only when `--trackio_static_space_id` names one. The database lives in `<output_dir>/trackio`
  unless `TRACKIO_DIR` says otherwise (`trackio show` there is the dashboard).

Only the main process reports. Every tracker's local files stay in the run folder unless the user points
them elsewhere: TensorBoard's event folder, MLflow's store (`mlflow.db` and `mlruns/` there, unless
MLFLOW_TRACKING_URI is set) and wandb's `wandb/` folder (unless WANDB_DIR is set); nothing lands in the
folder the command was started from.
"""

from __future__ import annotations

import contextlib
import csv
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.integrations.integration_utils import TrackioCallback

from hf_tasks.data.splits import METRIC_PREFIX_OF_SPLIT
from hf_tasks.metrics.classification import metric_key
from hf_tasks.secrets import redact_text

TRACKERS = ("tensorboard", "mlflow", "wandb", "trackio")
#: Set by a study for each run it launches: the trackio project (the study's) and group (the run's config).
TRACKIO_PROJECT_VARIABLE = "HF_TASKS_TRACKIO_PROJECT"
TRACKIO_GROUP_VARIABLE = "HF_TASKS_TRACKIO_GROUP"
#: TrainingArguments.project when the user gave none.
DEFAULT_TRACKIO_PROJECT = "huggingface"
MLFLOW_EXPERIMENT = "hf_tasks"
#: Variables this process set for an earlier run's folder: replaced for the next run, unlike the user's own.
_set_for_a_run: dict[str, str] = {}


def _inside_run_folder(variable: str, value: str) -> bool:
    """Set `variable` to `value` (a place in the run folder) unless the user set it (an empty value counts as
    unset); whether it was set."""
    if (os.environ.get(variable) or None) not in (None, _set_for_a_run.get(variable)):
        return False
    os.environ[variable] = _set_for_a_run[variable] = value
    return True
# Files of the run folder that are tables: name endings (before .csv).
TABLE_ENDINGS = ("_misclassified", "_qa_errors")
# TensorBoard shows a table as Markdown text; beyond this many rows it shows the first ones and says so.
TEXT_TABLE_ROWS = 100


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]

    def markdown(self, limit: int = TEXT_TABLE_ROWS) -> str:
        def cell(value: Any) -> str:
            return str(value).replace("|", "\\|").replace("\n", " ")

        lines = ["| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in self.rows[:limit]]
        if len(self.rows) > limit:
            lines.append(f"\n(first {limit} of {len(self.rows)} rows; the whole table is in the run folder)")
        return "\n".join(lines)


@dataclass
class RunReport:
    """What a finished run shows beyond its scalars."""

    step: int
    results: dict[str, Any]
    figures: dict[str, Path] = field(default_factory=dict)
    tables: dict[str, Table] = field(default_factory=dict)
    # split prefix → (class names, gold ids, predicted ids), for wandb's confusion-matrix plot.
    confusions: dict[str, tuple[list[str], list[int], list[int]]] = field(default_factory=dict)


def _read_csv(path: Path) -> Table:
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        columns = next(reader, [])
        return Table(columns, [row for row in reader])


def per_class_table(results: dict[str, Any], prefix: str, class_names: list[str]) -> Table | None:
    """Precision, recall, F1 and support of each class from a split's metrics, or None without them."""
    rows = []
    for name in class_names:
        key = metric_key(name)
        values = [results.get(f"{prefix}_{measure}_{key}") for measure in ("precision", "recall", "f1", "support")]
        if any(value is None for value in values):
            return None
        rows.append([name, *values])
    return Table(["class", "precision", "recall", "f1", "support"], rows) if rows else None


def _confusion(predictions: Path, class_names: list[str]) -> tuple[list[str], list[int], list[int]] | None:
    table = _read_csv(predictions)
    if "gold_label" not in table.columns or "predicted_label" not in table.columns:
        return None
    gold, predicted = table.columns.index("gold_label"), table.columns.index("predicted_label")
    index = {name: position for position, name in enumerate(class_names)}
    pairs = [(index[row[gold]], index[row[predicted]]) for row in table.rows if row[gold] in index]
    if not pairs:
        return None
    return class_names, [pair[0] for pair in pairs], [pair[1] for pair in pairs]


def collect(files: list[Path], results: dict[str, Any], class_names: list[str] | None, step: int) -> RunReport:
    """The figures and tables among a run folder's `files`, and per-class tables from `results`."""
    report = RunReport(step, results)
    for path in files:
        path = Path(path)
        if path.suffix == ".png":
            report.figures[path.stem] = path
        elif path.suffix == ".csv" and path.stem.endswith(TABLE_ENDINGS):
            report.tables[path.stem] = _read_csv(path)
        elif path.suffix == ".csv" and path.stem.endswith("_predictions") and class_names:
            confusion = _confusion(path, class_names)
            if confusion is not None:
                report.confusions[path.stem.removesuffix("_predictions")] = confusion
    for prefix in METRIC_PREFIX_OF_SPLIT.values():
        table = per_class_table(results, prefix, class_names or [])
        if table is not None:
            report.tables[f"{prefix}_per_class"] = table
    return report


def _numbers(results: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in results.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


class RunConfigToWandb(TrainerCallback):
    """Adds the recipe's own arguments (task, data, model) to the wandb run the Trainer starts."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_train_begin(self, args, state, control, **kwargs):
        import wandb

        if state.is_world_process_zero and wandb.run is not None:
            wandb.config.update(self.config, allow_val_change=True)


def trackio_folder(default: str | Path) -> Path:
    """Where trackio keeps its database: `TRACKIO_DIR` when the user set it, else `default`, put in TRACKIO_DIR
    for trackio to read when it is first imported (it reads it once: a process that imported it before keeps
    its folder, and is told so)."""
    _inside_run_folder("TRACKIO_DIR", str(Path(default).resolve()))
    folder = Path(os.environ["TRACKIO_DIR"])
    imported = sys.modules.get("trackio.utils")
    if imported is not None and Path(imported.TRACKIO_DIR).resolve() != folder.resolve():
        print(f"[trackers] trackio was imported before with TRACKIO_DIR={imported.TRACKIO_DIR}; it logs there, "
              f"not to {folder}", file=sys.stderr, flush=True)
    return folder


@dataclass
class TrackioTarget:
    """The trackio run one of our runs reports to."""

    project: str
    name: str
    group: str | None

    def open(self, config: dict[str, Any], space_id: str | None = None, private: bool | None = None,
             bucket_id: str | None = None) -> None:
        """Start (or continue: a resumed or re-evaluated run keeps its name) the run, `config` as its config."""
        import trackio

        run = trackio.init(project=self.project, name=self.name, group=self.group, resume="allow",
                           space_id=space_id, private=private, bucket_id=bucket_id)
        # After init: trackio refuses config keys starting with "_" at init, which model configs hold.
        run.config.update(config)
        # trackio keeps the command line, hiding only flags named like secrets: URL passwords too.
        if isinstance(run.config.get("_Command"), str):
            run.config["_Command"] = redact_text(run.config["_Command"])


class TrackioRun(TrackioCallback):
    """transformers' trackio callback, logging to our `TrackioTarget` with the model's and the recipe's
    configuration, and deploying a static Space on a push to the Hub only when one is named."""

    def __init__(self, target: TrackioTarget, config: dict[str, Any]):
        super().__init__()
        self.target = target
        self.config = config

    def setup(self, args, state, model, **kwargs):
        if state.is_world_process_zero:
            model_config = getattr(model, "config", None)
            model_config = model_config if isinstance(model_config, dict) or model_config is None \
                else model_config.to_dict()
            self.target.open({**(model_config or {}), **self.config}, space_id=args.trackio_space_id,
                             private=args.hub_private_repo, bucket_id=args.trackio_bucket_id)
            self._space_id = self._trackio.context_vars.current_space_id.get()
        self._initialized = True

    def on_push_begin(self, args, state, control, model, **kwargs):
        if isinstance(args.trackio_static_space_id, str):
            super().on_push_begin(args, state, control, model, **kwargs)


class Trackers:
    """The trackers `report_to` names among TensorBoard, MLflow, wandb and trackio, for one run writing
    `output_dir`.

    A training run builds it before the Trainer (`for_training`), adds `callbacks()` to the Trainer's and
    calls `report(results, files, trainer=trainer)` once the run folder is written; a script without a
    Trainer (the attention views) builds it directly and calls `report(results, files)`.
    """

    def __init__(self, report_to, output_dir: str | Path, run_name: str | None, config: dict[str, Any],
                 main_process: bool = True, project: str = DEFAULT_TRACKIO_PROJECT):
        self.output_dir = Path(output_dir)
        self.run_name = run_name
        self.config = config
        self.names = [name for name in TRACKERS if name in (report_to or [])] if main_process else []
        if "trackio" in (report_to or []):  # every process imports trackio with the Trainer's callback
            trackio_folder(self.output_dir / "trackio")
        self.trackio = TrackioTarget(
            os.environ.get(TRACKIO_PROJECT_VARIABLE) or project if project == DEFAULT_TRACKIO_PROJECT else project,
            self.output_dir.resolve().name, os.environ.get(TRACKIO_GROUP_VARIABLE))
        self._mlflow_run = None
        if "wandb" in self.names:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            _inside_run_folder("WANDB_DIR", str(self.output_dir.resolve()))
        if "mlflow" in self.names:
            self._open_mlflow_run()

    @classmethod
    def for_training(cls, training_args, config: dict[str, Any]) -> Trackers:
        return cls(training_args.report_to, training_args.output_dir, training_args.run_name, config,
                   main_process=training_args.process_index == 0, project=training_args.project)

    def _open_mlflow_run(self) -> None:
        import mlflow

        folder = self.output_dir.resolve()
        experiment_id = None
        in_run_folder = _inside_run_folder("MLFLOW_TRACKING_URI", f"sqlite:///{folder / 'mlflow.db'}")
        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])  # the variable's, whoever set it
        if in_run_folder:
            # the store's default artifact root is ./mlruns of the current folder: an experiment of its own keeps
            # the artifacts beside the database
            folder.mkdir(parents=True, exist_ok=True)
            name = os.getenv("MLFLOW_EXPERIMENT_NAME", MLFLOW_EXPERIMENT)
            client = mlflow.MlflowClient()
            experiment = client.get_experiment_by_name(name)
            experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(
                name, artifact_location=(folder / "mlruns").as_uri())
        # With these set the Trainer's callback opens (or resumes, or nests) the run itself.
        if mlflow.active_run() is None and not os.getenv("MLFLOW_RUN_ID") and not os.getenv("MLFLOW_NESTED_RUN"):
            self._mlflow_run = mlflow.start_run(run_name=self.run_name, experiment_id=experiment_id)

    def callbacks(self) -> list[TrainerCallback]:
        return [RunConfigToWandb(self.config)] if "wandb" in self.names else []

    def attach(self, trainer) -> None:
        """Swap the trackio callback the Trainer built from `report_to` (in every process) for `TrackioRun`."""
        stock = [item for item in trainer.callback_handler.callbacks if type(item) is TrackioCallback]
        for callback in stock:
            trainer.remove_callback(callback)
        if stock:
            trainer.add_callback(TrackioRun(self.trackio, self.config))

    def report(self, results: dict[str, Any], files: list[Path], trainer=None) -> RunReport:
        """Send the run's figures and tables to each tracker; close the MLflow run opened here."""
        task = getattr(trainer, "task", None)
        class_names = list(getattr(task, "label_names", None) or [])
        step = trainer.state.global_step if trainer is not None else 0
        report = collect(files, results, class_names, step)
        config_file = self.output_dir / "config.yaml"
        for name in self.names:
            getattr(self, f"_to_{name}")(report, trainer, config_file)
        return report

    def _to_tensorboard(self, report: RunReport, trainer, config_file: Path) -> None:
        import numpy as np
        from PIL import Image
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations.integration_utils import TensorBoardCallback, default_logdir

        callbacks = trainer.callback_handler.callbacks if trainer is not None else []
        callback = next((item for item in callbacks if isinstance(item, TensorBoardCallback)), None)
        log_dir = (getattr(callback, "logging_dir", None) or os.getenv("TENSORBOARD_LOGGING_DIR")
                   or os.path.join(self.output_dir, default_logdir()))
        writer = SummaryWriter(log_dir=log_dir)
        try:
            for name, path in report.figures.items():
                with Image.open(path) as image:
                    pixels = np.asarray(image.convert("RGB"))
                writer.add_image(f"figures/{name}", pixels, report.step, dataformats="HWC")
            for name, table in report.tables.items():
                writer.add_text(f"tables/{name}", table.markdown(), report.step)
            # The test split's metrics, which the Trainer never logs, named as its callback names the others.
            for key, value in _numbers(report.results).items():
                if key.startswith("test_"):
                    writer.add_scalar(key.replace("_", "/", 1), value, report.step)
            if config_file.is_file():
                writer.add_text("recipe_config", "```yaml\n" + config_file.read_text(encoding="utf-8") + "\n```")
        finally:
            writer.close()

    def _to_mlflow(self, report: RunReport, trainer, config_file: Path) -> None:
        import mlflow
        from PIL import Image

        run = self._mlflow_run or mlflow.active_run() or mlflow.last_active_run()
        if run is None:
            return
        resumed = mlflow.start_run(run_id=run.info.run_id) if mlflow.active_run() is None else contextlib.nullcontext()
        with resumed:
            # The test split's metrics (never logged by the Trainer) and the run's totals, at the last step.
            mlflow.log_metrics(_numbers(report.results), step=report.step)
            for name, path in report.figures.items():
                with Image.open(path) as image:
                    mlflow.log_image(image.convert("RGB"), artifact_file=f"figures/{name}.png")
            for name, table in report.tables.items():
                mlflow.log_table({column: [row[index] for row in table.rows] for index, column in
                                  enumerate(table.columns)}, artifact_file=f"tables/{name}.json")
            if config_file.is_file():
                mlflow.log_artifact(str(config_file))
        self.close()

    def close(self, status: str = "FINISHED") -> None:
        """End the MLflow run opened here (KILLED for a run a signal stopped); the others end with their process."""
        if self._mlflow_run is not None:
            import mlflow

            mlflow.end_run(status=status)
            self._mlflow_run = None

    def _to_wandb(self, report: RunReport, trainer, config_file: Path) -> None:
        import wandb

        if wandb.run is None:
            # No Trainer started one (a script without training): the same project and name it would use.
            wandb.init(project=os.getenv("WANDB_PROJECT", "huggingface"), name=self.run_name, config=self.config)
        wandb.run.summary.update({key: value for key, value in report.results.items()
                                  if isinstance(value, (int, float))})
        logged: dict[str, Any] = {f"figures/{name}": wandb.Image(str(path)) for name, path in report.figures.items()}
        logged.update({f"tables/{name}": wandb.Table(columns=table.columns, data=table.rows)
                       for name, table in report.tables.items()})
        for prefix, (class_names, gold, predicted) in report.confusions.items():
            logged[f"confusion_matrix/{prefix}"] = wandb.plot.confusion_matrix(
                y_true=gold, preds=predicted, class_names=class_names, title=f"{prefix} confusion matrix")
        if logged:
            wandb.log(logged)

    def _to_trackio(self, report: RunReport, trainer, config_file: Path) -> None:
        import trackio

        if trackio.context_vars.current_run.get() is None:  # no Trainer, or it ended its run after training
            self.trackio.open(self.config)
        logged: dict[str, Any] = {f"results/{key}": value for key, value in _numbers(report.results).items()}
        logged.update({f"figures/{name}": trackio.Image(str(path)) for name, path in report.figures.items()})
        logged.update({f"tables/{name}": trackio.Table(columns=table.columns, data=table.rows)
                       for name, table in report.tables.items()})
        trackio.log(logged, step=report.step)
        trackio.finish()
