"""The contract between a task family and the runner.

A task turns raw data (hub dataset or local files) into model features, scores the model's
predictions, and writes prediction files. The runner (`hf_tasks.runner`) owns everything else:
the Trainer, training, checkpoints, results.json, plots, model card and pushing.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any, Callable

import numpy as np
from datasets import Dataset

from hf_tasks.errors import BadInputError

# The key of each data split in `Task.features()`, which is also the prefix of its metrics.
FEATURE_KEY_OF_SPLIT = {"train": "train", "validation": "eval", "test": "test"}
# The splits the runner scores, by prefix: "eval" is the validation split, "test" the test split.
SPLIT_OF_PREFIX = {key: split for split, key in FEATURE_KEY_OF_SPLIT.items() if split != "train"}


class Task(abc.ABC):
    """One task family: load → preprocess → collate → score → write predictions.

    Subclasses build `features` for the splits that exist; the runner calls `score` from inside the
    Trainer's evaluation loop (on every process, with predictions already gathered across processes
    and truncated to the dataset length) and `write_predictions` on the main process only.
    """

    #: Collator passed to the Trainer; None means the Trainer default.
    data_collator: Callable | None = None
    _built_features: dict[str, Dataset] | None = None

    def features(self, training_args) -> dict[str, Dataset]:
        """Model-ready datasets keyed by "train", "eval" and/or "test", built once per task: the
        runner and surgery (head importance) both ask for them."""
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
    def score(self, prefix: str, predictions: Any, label_ids: Any) -> dict[str, float]:
        """Metrics (keys without prefix) for the split scored under `prefix` ("eval" or "test").

        Keep what `write_predictions` needs (for example the decoded predictions) on `self`.
        A "loss" key replaces the Trainer's evaluation loss. Tasks compute it from the gathered
        predictions because the Trainer averages per-batch means, and under several processes the
        last batches are topped up with repeated rows, so its loss depends on the process count.
        """

    def write_predictions(self, prefix: str, output_dir: Path) -> list[Path]:
        """Write prediction files and plots for the last scored `prefix`; return the paths."""
        return []

    def model_card_notes(self) -> str:
        """Markdown (ending in a blank line) the model card adds after its results: settings the task
        stored with the model."""
        return ""

    def summary(self, metrics: dict[str, float]) -> str:
        """A short human line for the end-of-run summary (the headline metrics)."""
        keys = [k for k in metrics if not k.endswith(("_runtime", "_per_second", "_loss"))]
        return ", ".join(f"{k}={metrics[k]:.4g}" for k in keys[:6] if isinstance(metrics[k], (int, float)))


def logits_of(predictions: Any) -> np.ndarray:
    """The logits array from whatever the Trainer gathered (a tuple when the model returns extras)."""
    return predictions[0] if isinstance(predictions, (tuple, list)) else predictions


LOCAL_SPLIT_FILES = {"train": "train_file", "validation": "validation_file", "test": "test_file"}


def load_splits(data_args, read_local: Callable[[Path], Dataset]) -> dict[str, Dataset]:
    """Raw splits from `--dataset_name` (hub id or a local dataset folder) or from local files.

    `read_local(path)` reads one local file of the task's format and validates it. The
    `--max_*_samples` limits are applied here (`limit_splits`), once, for every task.
    """
    from datasets import load_dataset

    if data_args.dataset_name:
        loaded = load_dataset(
            data_args.dataset_name, data_args.dataset_config_name, cache_dir=data_args.dataset_cache_dir
        )
        splits = {name: loaded[name] for name in ("train", "validation", "test") if name in loaded}
    else:
        splits = {}
        for split, attribute in LOCAL_SPLIT_FILES.items():
            path = getattr(data_args, attribute)
            if path is None:
                continue
            path = Path(path)
            if not path.is_file():
                raise BadInputError(f"{path}: no such file (given as --{attribute}); check the path.")
            splits[split] = read_local(path)
        if not splits:
            raise BadInputError(
                "No data given: pass --dataset_name (hub id) or --train_file/--validation_file/--test_file."
            )
    return limit_splits(splits, data_args)


def limit_splits(splits: dict[str, Dataset], data_args) -> dict[str, Dataset]:
    """The first `--max_train_samples` / `--max_eval_samples` / `--max_predict_samples` rows of each split."""
    limits = {
        "train": data_args.max_train_samples,
        "validation": data_args.max_eval_samples,
        "test": data_args.max_predict_samples,
    }
    return {
        name: split.select(range(min(len(split), limits[name]))) if limits.get(name) else split
        for name, split in splits.items()
    }


def tokenizer_fingerprint(tokenizer) -> str:
    """The tokenizer's full definition, without the truncation/padding state that calls leave on it."""
    import json

    definition = json.loads(tokenizer.backend_tokenizer.to_str())
    definition.pop("truncation", None)
    definition.pop("padding", None)
    return json.dumps(definition, sort_keys=True)


def preprocessing_cache(data_args, dataset: Dataset, *key) -> dict[str, str] | None:
    """`map` keyword arguments that cache a preprocessing of `dataset` on disk, keyed by its content and `key`.

    `datasets` caches `map` only for datasets backed by files in its cache; tables built in memory
    by our readers would be preprocessed again on every run. The key is the dataset's content
    fingerprint, this package's version and what the caller passes: the preprocessing's version
    constant (bumped whenever its code changes what it produces; tests/test_preprocessing_versions.py
    fails on a change without a bump), the tokenizer, and every argument, table and setting that
    feeds it. Code is never keyed by its bytecode, which leaves out constants and module globals.
    A second run with the same data and settings starts training at once. None with --overwrite_cache.
    """
    import datasets
    from datasets.fingerprint import Hasher

    import hf_tasks

    if data_args.overwrite_cache:
        return None
    fingerprint = Hasher.hash((dataset._fingerprint, hf_tasks.__version__, key))
    folder = Path(datasets.config.HF_DATASETS_CACHE) / "hf_tasks"
    folder.mkdir(parents=True, exist_ok=True)
    return {"cache_file_name": str(folder / f"{fingerprint}.arrow"), "new_fingerprint": fingerprint}
