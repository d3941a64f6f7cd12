"""The one split vocabulary: `train`, `validation`, `test` everywhere inside the package.

Metric prefixes (`eval_`, `test_`) and the `--max_eval_samples` style flag names belong to the
command line and the runner; this module is where the two meet.
"""

from __future__ import annotations

from typing import Mapping, TypeVar

from hf_tasks.errors import BadInputError

SPLITS = ("train", "validation", "test")
# Split names other datasets use for validation data (hub datasets, ImageFolder trees).
VALIDATION_ALIASES = ("validation", "valid", "val", "dev")
FILE_FLAG_OF_SPLIT = {"train": "train_file", "validation": "validation_file", "test": "test_file"}
LIMIT_FLAG_OF_SPLIT = {"train": "max_train_samples", "validation": "max_eval_samples", "test": "max_predict_samples"}
# The runner's metric prefix of each scored split ("eval_accuracy", "test_f1") and file names.
METRIC_PREFIX_OF_SPLIT = {"validation": "eval", "test": "test"}
SPLIT_OF_METRIC_PREFIX = {prefix: split for split, prefix in METRIC_PREFIX_OF_SPLIT.items()}

Split = TypeVar("Split")


def canonical_split(name: str) -> str | None:
    """`train`, `validation` or `test` for a split name a dataset uses; None for other names."""
    lowered = name.lower()
    if lowered in VALIDATION_ALIASES:
        return "validation"
    return lowered if lowered in SPLITS else None


def limit_splits(splits: Mapping[str, Split], data_args) -> dict[str, Split]:
    """The first `--max_train_samples` / `--max_eval_samples` / `--max_predict_samples` rows of each split.

    Works on anything with `len` and `select` (a `datasets.Dataset`); splits without a limit are kept whole.
    """
    limited = {}
    for name, split in splits.items():
        if name not in LIMIT_FLAG_OF_SPLIT:
            raise BadInputError(f"unknown split {name!r}; splits are {', '.join(SPLITS)}.")
        limit = getattr(data_args, LIMIT_FLAG_OF_SPLIT[name], None)
        limited[name] = split.select(range(min(len(split), limit))) if limit else split
    return limited
