"""Trainer helpers for epoch-based training: per-epoch wall time and throughput, and the
ReduceLROnPlateau schedule checked against the metric it watches.

The plateau schedule itself is the Trainer's own (`--lr_scheduler_type reduce_lr_on_plateau`): the
Trainer builds `torch.optim.lr_scheduler.ReduceLROnPlateau` from `--lr_scheduler_kwargs` and steps
it with `metric_for_best_model` after every evaluation. `check_plateau_schedule` guards its one
trap: torch defaults to mode "min", which on an accuracy would cut the rate whenever it improves.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_utils import SchedulerType

from hf_tasks.files import write_atomic

logger = logging.getLogger(__name__)


def check_plateau_schedule(training_args: TrainingArguments) -> None:
    """With `reduce_lr_on_plateau`, set the scheduler's mode from `greater_is_better` (derived from
    `metric_for_best_model`), or fail when the given mode contradicts it. Call before the Trainer is built."""
    if training_args.lr_scheduler_type != SchedulerType.REDUCE_ON_PLATEAU:
        return
    kwargs = training_args.lr_scheduler_kwargs
    if not isinstance(kwargs, dict):
        kwargs = training_args.lr_scheduler_kwargs = {}
    metric = training_args.metric_for_best_model
    mode = "max" if training_args.greater_is_better else "min"
    if kwargs.setdefault("mode", mode) != mode:
        raise ValueError(
            f"--lr_scheduler_kwargs mode={kwargs['mode']!r} contradicts --metric_for_best_model {metric} "
            f"(greater_is_better={training_args.greater_is_better}); use mode {mode!r}."
        )
    logger.info("ReduceLROnPlateau on eval_%s (%s): %s", metric.removeprefix("eval_"), mode, kwargs)


class EpochTimingCallback(TrainerCallback):
    """Logs each epoch's training wall time and images/second, with its evaluation's time and rate.

    Records go to the log, to `state.log_history` (so `trainer_state.json` keeps them) and to
    `epoch_times.json` in the output folder at the end of training.
    """

    def __init__(self):
        self.epochs: list[dict[str, float]] = []
        self._training = False
        self._started = 0.0
        self._first_step = 0
        self._examples: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._training = True
        self.epochs = []

    def on_epoch_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self._started = time.perf_counter()
        self._first_step = state.global_step
        dataset = getattr(train_dataloader, "dataset", None)
        self._examples = len(dataset) if dataset is not None and hasattr(dataset, "__len__") else None

    def on_epoch_end(self, args: TrainingArguments, state, control, **kwargs):
        seconds = time.perf_counter() - self._started
        steps = state.global_step - self._first_step
        images = steps * args.train_batch_size * args.gradient_accumulation_steps * args.world_size
        if self._examples is not None:
            images = min(images, self._examples)  # the last batch of an epoch may be short
        record = {
            "epoch": round(state.epoch or 0, 4),
            "train_seconds": round(seconds, 3),
            "train_images": images,
            "train_images_per_second": round(images / seconds, 2) if seconds > 0 else 0.0,
        }
        self.epochs.append(record)
        state.log_history.append({**record, "step": state.global_step})
        logger.info(
            "epoch %.2f: trained %d images in %.1f s (%.1f images/s)",
            record["epoch"], images, seconds, record["train_images_per_second"],
        )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not (self._training and self.epochs and metrics) or "eval_seconds" in self.epochs[-1]:
            return
        record = self.epochs[-1]
        record["eval_seconds"] = metrics.get("eval_runtime")
        record["eval_images_per_second"] = metrics.get("eval_samples_per_second")
        logger.info(
            "epoch %.2f: evaluated in %s s (%s images/s)",
            record["epoch"], record["eval_seconds"], record["eval_images_per_second"],
        )

    def on_train_end(self, args: TrainingArguments, state, control, **kwargs):
        self._training = False
        if state.is_world_process_zero and self.epochs:
            write_atomic(Path(args.output_dir) / "epoch_times.json", json.dumps(self.epochs, indent=2))
