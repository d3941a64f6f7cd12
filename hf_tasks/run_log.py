"""What a run prints: one start block, one compact line per log and evaluation, bars only on a terminal.

transformers and datasets log every config they load and every cache file they reuse at INFO level;
those dumps bury the lines a user reads, so both libraries log warnings only unless `--log_level info`
(or debug) asks for them. `--log_level warning` makes the run itself quiet as well.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import Any, Callable

import datasets
import transformers
from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from hf_tasks.throughput import throughput_text

logger = logging.getLogger("hf_tasks")

# Metric name endings left out of the per-evaluation line (they stay in results.json and wandb).
UNSHOWN_METRIC_ENDINGS = ("_runtime", "_per_second", "_preparation_time", "total_flos")
UNSHOWN_METRIC_PARTS = ("precision_", "recall_", "f1_", "support_", "accuracy_")
METRICS_SHOWN = 6


def configure_logging(training_args) -> None:
    """Log format and levels for this process, and the libraries' progress bars (`progress_bars_shown`)."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        handlers=[logging.StreamHandler(sys.stdout)])
    asked = training_args.log_level if training_args.should_log else training_args.log_level_replica
    if asked == "passive":
        level = logging.INFO if training_args.should_log else logging.WARNING
    else:
        level = logging.getLevelName(asked.upper())
    logger.setLevel(level)
    libraries = level if asked in ("debug", "info") else max(level, logging.WARNING)
    datasets.utils.logging.set_verbosity(libraries)
    transformers.utils.logging.set_verbosity(libraries)
    # The Trainer pins memory by default; on a machine without an accelerator torch warns at every
    # DataLoader. The arguments stay as given: config.yaml must rerun the same way on a GPU.
    warnings.filterwarnings("ignore", message="'pin_memory' argument is set as true but no accelerator")
    if not progress_bars_shown():
        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def progress_bars_shown() -> bool:
    """Bars only on a terminal and at info level: in a log file they leave carriage-return debris."""
    return sys.stderr.isatty() and logger.getEffectiveLevel() <= logging.INFO


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def metrics_line(metrics: dict[str, Any]) -> str:
    """The headline metrics of one log or evaluation: "loss 1.108 · accuracy 0.2188 · macro_f1 0.1197"."""
    shown = []
    for key, value in metrics.items():
        name = key.split("_", 1)[1] if key.startswith(("eval_", "test_", "train_")) else key
        if key.endswith(UNSHOWN_METRIC_ENDINGS) or name.startswith(UNSHOWN_METRIC_PARTS) or key == "epoch":
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown.append(f"{name} {_number(value)}")
    return " · ".join(shown[:METRICS_SHOWN])


class MetricsLog(TrainerCallback):
    """One line per training log and per evaluation, through the `hf_tasks` logger (so `--log_level
    warning` silences it), instead of the Trainer's printed dictionaries."""

    def __init__(self):
        self.last_evaluation: tuple[int, str] | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs or any(key.startswith(("eval_", "test_")) for key in logs):
            return
        if "train_loss" in logs:
            speed = throughput_text(logs, "train")
            logger.info("Training finished after %d steps in %.1f s: mean training loss %s%s", state.global_step,
                        logs.get("train_runtime", 0.0), _number(logs["train_loss"]), f", {speed}" if speed else "")
        elif "loss" in logs:
            logger.info("step %d (epoch %.2f): %s", state.global_step, state.epoch or 0.0, metrics_line(logs))

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not state.is_world_process_zero or not metrics:
            return
        line = metrics_line(metrics)
        # The runner's final evaluation repeats the last one when no other checkpoint was loaded.
        if self.last_evaluation != (state.global_step, line):
            logger.info("step %d (epoch %.2f) validation: %s", state.global_step, state.epoch or 0.0, line)
        self.last_evaluation = (state.global_step, line)


def _duration(seconds: float) -> str:
    """3725 → "1h 02m 05s", 65 → "1m 05s", 4.2 → "4s"."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {seconds:02d}s"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


class ProgressLog(TrainerCallback):
    """A progress line in the log every `--progress_interval_seconds` of training (default 30 s): step of
    total, epoch, samples/s, elapsed time, ETA and the mean training loss since the last line.

    Bars show only on a terminal and `--logging_steps` may be minutes apart on a CPU; this line is what a
    redirected run (a Slurm job, a study's run) says while it trains. The Trainer calls `add_loss` with
    each micro-batch's loss (a tensor, read only when a line is written, so a GPU is not synchronised
    at every step).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.loss_sum = None
        self.steps_since_line = 0

    def add_loss(self, loss) -> None:
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.last_line = self.clock()
        self.first_step = state.global_step  # a resumed run counts its rate from here

    def on_step_end(self, args, state, control, **kwargs):
        self.steps_since_line += 1
        interval = getattr(args, "progress_interval_seconds", 30.0)
        now = self.clock()
        if not interval or now - self.last_line < interval or not state.is_world_process_zero:
            return
        self.last_line = now
        elapsed, done = now - self.started, state.global_step - self.first_step
        batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        parts = [f"step {state.global_step:,}/{state.max_steps:,} ({state.global_step / max(state.max_steps, 1):.0%})",
                 f"epoch {state.epoch or 0.0:.2f}", f"{done * batch / max(elapsed, 1e-9):.1f} samples/s",
                 f"elapsed {_duration(elapsed)}",
                 f"ETA {_duration(elapsed / max(done, 1) * (state.max_steps - state.global_step))}"]
        if self.loss_sum is not None:
            parts.append(f"loss {_number(float(self.loss_sum) / self.steps_since_line)}")
        self.loss_sum, self.steps_since_line = None, 0
        logger.info("progress: %s", " · ".join(parts))


class SilentProgressCallback(ProgressCallback):
    """The Trainer's progress bars without their printed copy of every log (MetricsLog says it once)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return


def use_metrics_log(trainer) -> None:
    """Swap the Trainer's printing callbacks for `MetricsLog` (bars stay when they are on)."""
    for printing in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(printing)
    if not trainer.args.disable_tqdm and progress_bars_shown():
        trainer.add_callback(SilentProgressCallback)
    trainer.add_callback(MetricsLog)


def log_start(data: str, features: dict[str, Any], task, model, counts: dict[str, int], output_dir,
              training_args) -> None:
    """The run's start block: where the data comes from, how much of each split (in the task's unit:
    examples, QA windows, clips, images) and which classes, the model and its trainable parameters,
    the device, precision and loader workers, and the output folder."""
    sizes = ", ".join(f"{split} {len(rows):,}" for split, rows in features.items())
    logger.info("Data: %s", data)
    logger.info("Size: %s %s", sizes, task.feature_unit)
    classes = getattr(task, "label_names", None)
    if classes:
        logger.info("Classes: %s", ", ".join(classes))
    logger.info("Model: %s, %s trainable of %s parameters", type(model).__name__,
                f"{counts['trainable_params']:,}", f"{counts['total_params']:,}")
    precision = getattr(training_args, "precision", "bf16" if training_args.bf16 else "fp32")
    logger.info("Device: %s, %s, %d loader workers", training_args.device, precision,
                training_args.dataloader_num_workers)
    logger.info("Output: %s", output_dir)
