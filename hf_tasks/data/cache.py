"""The preprocessing cache: features written once to disk, keyed by explicit versions, never by bytecode."""

from __future__ import annotations

import json
from pathlib import Path


def tokenizer_fingerprint(tokenizer) -> str:
    """The tokenizer's full definition, without the truncation/padding state that calls leave on it."""
    definition = json.loads(tokenizer.backend_tokenizer.to_str())
    definition.pop("truncation", None)
    definition.pop("padding", None)
    return json.dumps(definition, sort_keys=True)


def preprocessing_cache(data_args, dataset, *key) -> dict[str, str] | None:
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
