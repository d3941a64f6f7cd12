"""Where a run's raw splits come from: a hub dataset, or local files (one per split).

Data sources are exclusive (the command line resolves `--dataset_name` against `--*_file` and
`--data_dir`, see `hf_tasks.args`); adapters call `load_splits` with a reader for one local file of
their format, and get each split by its name, never guessed from a file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from hf_tasks.data.fetch import fetch_hint
from hf_tasks.data.splits import FILE_FLAG_OF_SPLIT, canonical_split
from hf_tasks.errors import BadInputError


def load_hub_splits(data_args) -> dict[str, Any]:
    """The train/validation/test splits of `--dataset_name` (hub id or a local folder `load_dataset` reads),
    under canonical names (a `valid` or `dev` split is the validation split)."""
    from datasets import load_dataset

    loaded = load_dataset(data_args.dataset_name, data_args.dataset_config_name, cache_dir=data_args.dataset_cache_dir)
    splits = {}
    for name in loaded:
        canonical = canonical_split(name)
        if canonical is not None and canonical not in splits:
            splits[canonical] = loaded[name]
    if not splits:
        raise BadInputError(f"--dataset_name {data_args.dataset_name}: no train, validation or test split "
                            f"(splits: {list(loaded)}).")
    return splits


def load_splits(data_args, read_local: Callable[[Path, str], Any]) -> dict[str, Any]:
    """Raw splits from `--dataset_name`, or from `--train_file` / `--validation_file` / `--test_file`
    read by `read_local(path, split)`. Limits (`--max_*_samples`) are the caller's: an adapter that
    validates rows applies them after validation."""
    if data_args.dataset_name:
        return load_hub_splits(data_args)
    splits = {}
    for split, flag in FILE_FLAG_OF_SPLIT.items():
        path = getattr(data_args, flag)
        if path is None:
            continue
        path = Path(path)
        if not path.is_file():
            raise BadInputError(f"{path}: no such file (given as --{flag}); check the path.{fetch_hint(path)}")
        splits[split] = read_local(path, split)
    if not splits:
        raise BadInputError("No data given: pass --dataset_name (hub id) or "
                            "--train_file/--validation_file/--test_file.")
    return splits


def require_columns(columns: Sequence[str], needed: Sequence[str], source: str, flags: str) -> None:
    """Stop naming `source`, the missing columns and the flags (`flags`) that rename them."""
    missing = [column for column in needed if column and column not in columns]
    if missing:
        raise BadInputError(f"{source}: no column {', '.join(repr(c) for c in missing)} (columns: {list(columns)}); "
                            f"rename it in the data or name the right one with {flags}.")


def label_values(split, column: str) -> list[str | None]:
    """A label column as class names: a `ClassLabel` id is spelled by its name, a missing label
    (None or a negative id) is None, anything else is its text."""
    from datasets import ClassLabel

    feature = split.features.get(column)
    values = split[column]
    if isinstance(feature, ClassLabel):
        return [feature.int2str(value) if value is not None and value >= 0 else None for value in values]
    return [None if value is None else str(value) for value in values]


def class_names_of(splits: dict[str, Any], column: str) -> list[str]:
    """Class names of a label column: a `ClassLabel`'s names in id order, else the sorted distinct
    values over all splits."""
    from datasets import ClassLabel

    first = next(iter(splits.values()))
    feature = first.features.get(column)
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    return sorted({value for split in splits.values() for value in label_values(split, column) if value is not None})
