"""Folders that sample generators own: they write only where nothing of the user's can be lost.

A generator writes into a folder that is new or empty, or that it made itself earlier. Such a folder
holds a marker file (`OWNER_MARKER`) naming the generator, the settings it was called with, and
every file it wrote with its size. Rerunning with the same settings reuses the files as they are;
other settings replace exactly the files the marker lists. A folder holding anything else (the
user's own data, a file added to a generated folder) is left untouched. A recipe asked to generate
into a folder of the user's own data (files and no marker) reads that data instead: the user's folder
wins (`generate_into_data_dir`).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

from hf_tasks.options import DataArguments
from hf_tasks.errors import BadInputError
from hf_tasks.files import read_json
from hf_tasks.run_folder import remove_listed

OWNER_MARKER = ".hf_tasks-generated.json"


def _listing(folder: Path) -> dict[str, int]:
    """Relative path → size of every file under `folder`, the marker aside."""
    return {
        path.relative_to(folder).as_posix(): path.stat().st_size
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != OWNER_MARKER
    }


def _read_marker(folder: Path) -> dict[str, Any] | None:
    """The marker, or None when there is none or it does not have the shape the generator writes."""
    marker = read_json(folder / OWNER_MARKER)
    return marker if isinstance(marker, dict) and isinstance(marker.get("files"), dict) else None


def _refusal(folder: Path, generator: str, reason: str) -> BadInputError:
    return BadInputError(
        f"{folder}: {reason}, so the {generator} sample generator will not write there (it writes only into "
        "a new or empty folder, or one it made). Give --data_dir a new folder for the synthetic data, or set "
        "--generate_synthetic_data false to train on that folder as it is."
    )


def write_owned_folder(
    folder: str | Path, generator: str, settings: dict[str, Any], write: Callable[[Path], None]
) -> Path:
    """Fill `folder` with `write(staging_folder)` unless it already holds this generator's output for
    `settings`; return `folder`.

    The files are written beside `folder` first and moved in whole, so a reader never sees half a data
    set. Raises BadInputError, touching nothing, when `folder` holds anything the generator did not write.
    """
    folder = Path(folder)
    settings = json.loads(json.dumps(settings))  # as the marker stores them (tuples become lists)
    if folder.exists() and not folder.is_dir():
        raise _refusal(folder, generator, "is a file")
    present = _listing(folder) if folder.is_dir() else {}
    marker = _read_marker(folder) if folder.is_dir() else None
    if marker is None:
        if present or (folder.is_dir() and any(folder.iterdir())):
            raise _refusal(folder, generator, "is not empty and was not written by hf_tasks")
    else:
        if marker.get("generator") != generator:
            raise _refusal(folder, generator, f"was written by the {marker.get('generator')} generator")
        foreign = sorted(set(present) - set(marker.get("files", {})))
        if foreign:
            raise _refusal(folder, generator, f"holds files the generator did not write ({', '.join(foreign[:3])})")
        if marker.get("settings") == settings and present == marker.get("files"):
            return folder

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(staging)
        written = _listing(staging)
        (staging / OWNER_MARKER).write_text(
            json.dumps({"generator": generator, "settings": settings, "files": written}, indent=1), encoding="utf-8"
        )
        if marker is not None:
            # Only the generator's own earlier output is here (checked above); the folder itself stays,
            # so a path the user holds to it remains valid.
            remove_listed(folder, marker["files"], folder / OWNER_MARKER)
        folder.mkdir(exist_ok=True)
        for item in staging.iterdir():
            item.rename(folder / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def holds_users_data(folder: str | Path) -> bool:
    """Whether `folder` holds anything without a generator's marker: the user's own data."""
    folder = Path(folder)
    return folder.is_dir() and _read_marker(folder) is None and any(folder.iterdir())


def generate_into_data_dir(state, generate: Callable[[str], Path]) -> None:
    """`--generate_synthetic_data`: run `generate(data_dir)` once (main process first, the others wait),
    unless the folder holds the user's own data: then that data is read as it is and the generator does
    not run. Either way `state.data_origin` says which, for the run's start block."""
    data_dir, training_args = state[DataArguments].data_dir, state.training_args
    if not data_dir:
        raise BadInputError("--generate_synthetic_data writes into --data_dir; give one (a new folder).")
    with training_args.main_process_first(desc="writing synthetic data"):
        # Every process decides from the folder as the main process left it (the others look after it wrote).
        if holds_users_data(data_dir):
            state.data_origin = ("your data, read as it is: the sample generator (generate_synthetic_data) did not "
                                 "run, as the folder holds files it did not write")
            return
        if training_args.process_index == 0:
            generate(data_dir)
        state.data_origin = "synthetic data from the sample generator"
