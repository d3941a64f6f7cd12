"""Reading YAML config files, written as differences: a config may name `base: other.yaml` (relative to
its own folder); its keys override the base's, and bases may chain.

`config_layers` gives the chain file by file, so a caller can resolve each file's relative paths against
that file's folder; `config_values` gives the merged values. Both the recipes' parser (`hf_tasks.args`)
and the study read configs through here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from hf_tasks.errors import BadInputError

BASE_KEY = "base"
# The file a recipe's configs share by convention: not an experiment, so the study passes over it when
# a glob such as recipes/configs/farstail/*.yaml names it.
SHARED_BASE_NAME = "base.yaml"

# What a path-valued argument of any recipe or command is. READS: a local file or folder the run reads, or a
# hub id / model name when no such path exists; a missing one is left for the data layer or the model
# loader to name, since the repository's configs name data users download later. WRITES: where the
# run writes.
READS, WRITES = "reads", "writes"
PATH_ARGUMENTS = {
    "model_name_or_path": READS, "config_name": READS, "tokenizer_name": READS, "dataset_name": READS,
    "data_dir": READS, "deepspeed": READS, "images": READS, "mask_dir": READS,
    "train_file": READS, "validation_file": READS, "test_file": READS,
    "output_dir": WRITES, "cache_dir": WRITES, "dataset_cache_dir": WRITES,
    "from_files": READS,  # fetch's --from
}


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise BadInputError(f"--config {where}: not valid YAML ({getattr(error, 'problem', None) or error}); "
                            "fix the file.") from error
    except UnicodeDecodeError as error:
        raise BadInputError(f"--config {path}: not UTF-8 text (byte {error.start}); save it as UTF-8.") from None
    if not isinstance(loaded, dict):
        raise BadInputError(f"--config {path}: expected a mapping of argument names to values, got "
                            f"{type(loaded).__name__}; write one 'name: value' per line.")
    return loaded


def config_layers(path: Path) -> list[tuple[Path, dict[str, Any]]]:
    """`path` and the bases it names, furthest base first, each with its own values (without `base`).

    A missing base or a chain that comes back to a file it passed is a `BadInputError` naming the files.
    """
    if not Path(path).is_file():
        raise BadInputError(f"--config {path}: no such file; check the path.")
    layers: list[tuple[Path, dict[str, Any]]] = []
    chain: list[Path] = []
    current = Path(path)
    while True:
        chain.append(current)
        values = _read_mapping(current)
        base = values.pop(BASE_KEY, None)
        layers.append((current, values))
        if base is None:
            return layers[::-1]
        if not isinstance(base, str) or not base:
            raise BadInputError(f"--config {current}: base: {base!r} must name one config file, relative to "
                                f"{current.parent}.")
        following = current.parent / base
        if not following.is_file():
            raise BadInputError(f"--config {current}: base: {base} is no file ({following}); check the name.")
        if any(following.resolve() == passed.resolve() for passed in chain):
            cycle = " -> ".join(str(item) for item in [*chain, following])
            raise BadInputError(f"--config {path}: its bases form a cycle ({cycle}); remove one base: line.")
        current = following


def config_values(path: Path) -> dict[str, Any]:
    """The values of config `path` with its bases merged in (the config's own win), without `base`, each
    path the run reads looked up beside the file that gave it: the values stay right when written to a
    config elsewhere (the study's per-run configs)."""
    merged: dict[str, Any] = {}
    for file, values in config_layers(path):
        merged.update({name: path_beside_config(file, name, value) for name, value in values.items()})
    return merged


def path_beside_config(config: Path, name: str, value: Any) -> Any:
    """A path the run reads, as the config gives it: beside the config file when it is there, else
    as written (relative to the current directory). Paths the run writes stay as written."""
    if PATH_ARGUMENTS.get(name) != READS:
        return value
    if isinstance(value, list):
        return [path_beside_config(config, name, item) for item in value]
    if not isinstance(value, str) or not value or os.path.isabs(value):
        return value
    beside_config = config.parent / value
    # normpath: "configs/x/../../data/f.tsv" reads (and logs) as "data/f.tsv".
    return os.path.normpath(beside_config) if beside_config.exists() else value
