"""The contract between a task family and the runner.

A task turns the `DatasetDict` a dataset adapter (`hf_tasks.data`) loaded into model features,
scores the model's predictions, and writes prediction files. What else it needs it tells the runner
(`trainer_settings`, `unavailable_metrics`, `run_files`) instead of doing it. The runner
(`hf_tasks.runner`) owns everything else: the Trainer, training, checkpoints, results.json, plots, model
card and pushing.
Every text and audio task is built the same way: `Task(data, processor, data_args, task_args, ...)`.
"""

from __future__ import annotations

import abc
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from datasets import Dataset

logger = logging.getLogger(__name__)

# Above this share of truncated inputs the run says so at start (FarsTail pairs with MiniLM's tokenizer at
# 128 tokens: 91.5%, silently, before).
TRUNCATION_WARNING_SHARE = 0.03
# Rows whose full length is measured for that warning: enough for the share and the 95th percentile.
LENGTH_SAMPLE_ROWS = 5000


class Task(abc.ABC):
    """One task family: preprocess → collate → score → write predictions.

    Subclasses build `features` for the splits that exist; the runner calls `score` from inside the
    Trainer's evaluation loop (on every process, with predictions already gathered across processes
    and truncated to the dataset length) and `write_predictions` on the main process only.
    """

    #: Collator passed to the Trainer; None means the Trainer default.
    data_collator: Callable | None = None
    #: What one row of the features is, for the run log: examples, windows, clips or images.
    feature_unit: str = "examples"
    #: Whether `data_collator` builds padding-free batches (`--padding_free`); the runner then makes the
    #: model read them (`hf_tasks.modeling.padding_free`).
    padding_free: bool = False
    #: Why this task cannot take `--padding_free`; None where it can.
    padding_free_refusal: str | None = "its inputs are not token sequences a classifier reads one by one"
    #: What `batch_work` counts, as the throughput figures name it (`train_tokens_per_second`).
    work_unit: str = "tokens"

    def batch_work(self, inputs: dict[str, Any]) -> Any:
        """The real work in one collated batch, in `work_unit`, left on the batch's device (read once at
        the end, so no step waits for it): tokens that are not padding."""
        mask = inputs.get("attention_mask")
        return mask.sum() if mask is not None else inputs["input_ids"].numel()
    _built_features: dict[str, Dataset] | None = None

    def features(self, training_args) -> dict[str, Dataset]:
        """Model-ready datasets keyed by split ("train", "validation" and/or "test"), built once per
        task: the runner and surgery (head importance) both ask for them."""
        if self._built_features is None:
            self._built_features = self.build_features(training_args)
        return self._built_features

    @abc.abstractmethod
    def build_features(self, training_args) -> dict[str, Dataset]:
        """Build what `features` returns.

        Build them inside `training_args.main_process_first(...)` so that only the main process
        preprocesses and the others read the `datasets` cache.
        """

    @abc.abstractmethod
    def score(self, split: str, predictions: Any, label_ids: Any) -> dict[str, float]:
        """Metrics (keys without the runner's `eval_`/`test_` prefix) of `split` ("validation" or "test").

        Keep what `write_predictions` needs (for example the decoded predictions) on `self`.
        A "loss" key replaces the Trainer's evaluation loss. Tasks compute it from the gathered
        predictions because the Trainer averages per-batch means, and under several processes the
        last batches are topped up with repeated rows, so its loss depends on the process count.
        """

    def write_predictions(self, split: str, output_dir: Path, file_prefix: str) -> list[Path]:
        """Write prediction files and plots of the last scored `split`, named `{file_prefix}_...`
        (the runner's metric prefix: `eval_predictions.csv`); return the paths."""
        return []

    def trainer_settings(self) -> dict[str, Any]:
        """Trainer arguments the task needs, which the runner sets before building the Trainer (a task
        that transforms raw columns on the fly needs `remove_unused_columns=False`)."""
        return {}

    def unavailable_metrics(self) -> dict[str, str]:
        """Metrics (without the `eval_` prefix) this task, as configured, will not report, each with how
        to get it; the runner refuses such a `--metric_for_best_model` before training."""
        return {}

    def run_files(self) -> dict[str, str]:
        """Files the task wants in the run folder, name → text, known once `features` are built; the
        runner writes them (main process only, listed in the run manifest)."""
        return {}

    def model_card_notes(self) -> str:
        """Markdown (ending in a blank line) the model card adds after its results: settings the task
        stored with the model."""
        return ""

    def summary(self, metrics: dict[str, float]) -> str:
        """A short human line for the end-of-run summary (the headline metrics)."""
        per_class = ("precision_", "recall_", "f1_", "support_")
        keys = [key for key in metrics
                if not key.endswith(("runtime", "per_second", "_loss", "preparation_time"))
                and not key.startswith(per_class)]
        return ", ".join(f"{key}={metrics[key]:.4g}" for key in keys[:6] if isinstance(metrics[key], (int, float)))


def logits_of(predictions: Any) -> np.ndarray:
    """The logits array from whatever the Trainer gathered (a tuple when the model returns extras)."""
    return predictions[0] if isinstance(predictions, (tuple, list)) else predictions


def length_sample(rows: Dataset) -> Dataset:
    """At most LENGTH_SAMPLE_ROWS rows spread evenly over `rows`, whose untruncated lengths are measured."""
    if len(rows) <= LENGTH_SAMPLE_ROWS:
        return rows
    return rows.select(np.linspace(0, len(rows) - 1, LENGTH_SAMPLE_ROWS).astype(int))


def warn_about_truncation(lengths: Sequence[int], max_seq_length: int, what: str) -> None:
    """Say once, at start, when more than TRUNCATION_WARNING_SHARE of `what` (e.g. "training pairs") are
    longer than --max_seq_length tokens, with the length that would keep 95% of them whole."""
    lengths = np.asarray(lengths)
    truncated = int((lengths > max_seq_length).sum())
    if not len(lengths) or truncated / len(lengths) <= TRUNCATION_WARNING_SHARE:
        return
    logger.warning("%.1f%% of %s (%d of %d measured) are longer than --max_seq_length %d tokens and are truncated; "
                   "--max_seq_length %d would keep 95%% of them whole.", 100 * truncated / len(lengths), what,
                   truncated, len(lengths), max_seq_length, int(np.ceil(np.percentile(lengths, 95))))
