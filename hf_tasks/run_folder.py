"""The run folder's rules: where a run may write, what resuming means, which files belong to a run.

- A run starts only in a new or empty `--output_dir`, in one it resumes (`--resume_from_checkpoint`),
  or with `--overwrite_output_dir`. Anything else stops before data is read, naming the fix.
- A finished run lists the files it wrote in `RUN_MANIFEST`. Overwriting the folder for a new
  training run removes exactly those files, the Trainer's `checkpoint-<step>` folders and the folders
  that removal emptied, so nothing from the earlier run stays beside the new results; files the
  toolkit did not write stay where they are.
- Every deletion stays inside its folder whatever a listing says (`remove_listed`): a manifest may
  come from a folder downloaded from the Hub or edited by hand, so an absolute entry, a `..`, a
  symlinked folder on the way or a path that resolves elsewhere is refused, before anything is removed.
- A checkpoint is complete when its `trainer_state.json` (the file the Trainer writes last) parses;
  `newest_complete_checkpoint` is the one rule every resume path uses. `--resume_from_checkpoint auto`
  resumes from it when there is one and starts fresh when there is none (a requeue script can pass it
  on every launch); `latest` (or `true`) requires one; anything else is a checkpoint folder.
- `results.json` is written last (see `hf_tasks.runner`), so its presence means the run finished.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import sys
from pathlib import Path, PurePath
from typing import Iterable

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from hf_tasks.errors import BadInputError, RunAlreadyFinished
from hf_tasks.files import read_json, write_json

logger = logging.getLogger(__name__)

RUN_MANIFEST = ".hf_tasks-run.json"
# Written when a training run begins: a folder holding it and no results.json holds an unfinished attempt of a
# run (killed before its first complete checkpoint, perhaps), which `--resume_from_checkpoint auto` restarts.
RUN_STARTED = ".hf_tasks-started.json"
RESULTS = "results.json"
RESUME_IF_POSSIBLE = "auto"
RESUME_REQUIRED = frozenset({"latest", "true", "yes"})
NO_RESUME = frozenset({"", "false", "no", "none"})
# The Trainer's own checkpoint folders; nothing else matching `checkpoint-*` is the toolkit's to remove.
CHECKPOINT_FOLDER = re.compile(rf"{PREFIX_CHECKPOINT_DIR}-(\d+)")
# What `hf_tasks.files.atomic_path` leaves when a kill stops it between creating and renaming its file.
INTERRUPTED_WRITE = re.compile(r"\..+\.[A-Za-z0-9_]{8}\.tmp")
TRAINER_STATE = "trainer_state.json"
# Fault injection for the integrity tests: `HF_TASKS_FAULT_AT=<point>` (or `<point>@<n>` for its n-th
# passage) kills the process with SIGKILL there, as an OOM killer or a lost node would. The runner's
# points: train_step (before each step), checkpoint_save (weights and optimizer saved, trainer_state.json
# not), final_writes (model, predictions, config and card written, no manifest), before_results.
FAULT_ENV = "HF_TASKS_FAULT_AT"
_fault_passages: dict[str, int] = {}


def fault_point(name: str) -> None:
    """A named moment a test may kill the process at (see `FAULT_ENV`); nothing happens otherwise."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted or wanted.split("@")[0] != name:
        return
    _fault_passages[name] = _fault_passages.get(name, 0) + 1
    if _fault_passages[name] == int(wanted.partition("@")[2] or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def newest_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The `checkpoint-<step>` with the highest step whose trainer_state.json parses: the Trainer writes
    that file last, so a checkpoint a kill cut short is passed over."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return None
    complete = [path for path in output_dir.iterdir()
                if CHECKPOINT_FOLDER.fullmatch(path.name) and path.is_dir() and not path.is_symlink()
                and read_json(path / TRAINER_STATE) is not None]
    return max(complete, key=lambda path: int(CHECKPOINT_FOLDER.fullmatch(path.name)[1]), default=None)


def resolve_checkpoint(training_args) -> str | None:
    """`--resume_from_checkpoint` as a checkpoint folder to resume from, or None to start fresh."""
    requested = training_args.resume_from_checkpoint
    word = str(requested).lower() if requested is not None else ""
    if word in NO_RESUME:
        return None
    output_dir = Path(training_args.output_dir)
    if word == RESUME_IF_POSSIBLE or word in RESUME_REQUIRED:
        last = newest_complete_checkpoint(output_dir)
        if last is None and word in RESUME_REQUIRED:
            raise BadInputError(
                f"--resume_from_checkpoint {requested}: no complete {PREFIX_CHECKPOINT_DIR}-* folder in "
                f"{output_dir}; pass --resume_from_checkpoint {RESUME_IF_POSSIBLE} to start fresh when there is none."
            )
        return str(last) if last is not None else None
    if not Path(requested).is_dir():
        raise BadInputError(f"--resume_from_checkpoint {requested}: no such checkpoint folder; check the path.")
    return str(requested)


def check_output_dir(training_args) -> None:
    """Stop (BadInputError) when this run would write over files in `--output_dir` without being asked;
    `RunAlreadyFinished` when it asks to resume a run that finished."""
    output_dir = Path(training_args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise BadInputError(f"--output_dir {output_dir}: is a file; give a folder.")
    entries = sorted(path.name for path in output_dir.iterdir()) if output_dir.is_dir() else []
    word = str(training_args.resume_from_checkpoint).lower()
    finished = (output_dir / RUN_MANIFEST).is_file() or (output_dir / RESULTS).is_file()
    overwrites = getattr(training_args, "overwrite_output_dir", False)  # hf_tasks.args.TrainingArguments has it
    resume_asked = word == RESUME_IF_POSSIBLE or word in RESUME_REQUIRED
    # results.json, not the manifest: a run killed between the two resumes to write results.json
    if training_args.do_train and (output_dir / RESULTS).is_file() and not overwrites and resume_asked:
        raise RunAlreadyFinished(
            f"--output_dir {output_dir} holds a finished run (results.json): nothing to resume, left as it is. "
            "For a new run give a new --output_dir, or replace this one with --overwrite_output_dir true.")
    resumes = bool(training_args.do_train) and resolve_checkpoint(training_args) is not None  # checks the flag too
    unfinished = any(CHECKPOINT_FOLDER.fullmatch(name) for name in entries)
    # `auto` on a run killed before its first complete checkpoint starts it again (a requeue must not loop):
    # its checkpoints, or the mark it left when it began, say the files are that run's.
    auto = word == RESUME_IF_POSSIBLE
    restarts = bool(training_args.do_train) and auto and (unfinished or RUN_STARTED in entries) and not finished
    if not entries or resumes or restarts or overwrites:
        return
    if finished:
        what = "a finished run (results.json)"
    elif unfinished:
        what = "checkpoints of an unfinished run"
    elif RUN_STARTED in entries:
        what = "files of an unfinished run"
    else:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        what = f"files no run of this toolkit started ({shown})" if auto else f"files ({shown})"
    continues = "" if auto or finished else f"continue it with --resume_from_checkpoint {RESUME_IF_POSSIBLE}, "
    raise BadInputError(f"--output_dir {output_dir} already holds {what}; give a new --output_dir, {continues}"
                        "or replace it with --overwrite_output_dir.")


def _manifest_files(output_dir: Path) -> list[str]:
    """The entries of `output_dir`'s manifest (none when it is missing or cut short); a manifest that
    parses but is not a list of paths is refused."""
    manifest = read_json(output_dir / RUN_MANIFEST)
    if manifest is None:
        return []
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, list) or not all(isinstance(entry, str) for entry in files):
        raise BadInputError(f"{output_dir / RUN_MANIFEST}: not a list of files; remove it by hand (it names what "
                            "an earlier run wrote) or give a new --output_dir.")
    return files


def contained(folder: Path, entry: str, listing: Path) -> Path:
    """`folder / entry`, when that path lies inside `folder` without passing through a symlink; otherwise
    BadInputError naming `listing` (the manifest the entry came from)."""
    parts = PurePath(entry).parts
    why = None
    if not entry or PurePath(entry).is_absolute() or PurePath(entry).drive:
        why = "is not a path relative to the folder"
    elif ".." in parts:
        why = "climbs out with '..'"
    else:
        path, inside = folder, folder.resolve()
        for part in parts[:-1]:
            path = path / part
            if path.is_symlink():
                why = f"passes through the symlink {path}"
                break
        else:
            path = folder / entry
            if not path.parent.resolve().is_relative_to(inside):
                why = f"resolves outside {folder}"
    if why is not None:
        raise BadInputError(f"{listing}: the entry {entry!r} {why}, so nothing was removed; remove {listing.name} "
                            f"by hand if {folder} is yours, or give a new folder.")
    return folder / entry


def remove_listed(folder: Path, entries: Iterable[str], listing: Path) -> None:
    """Remove the files `entries` name (relative to `folder`), then the folders that removal emptied,
    never reaching outside `folder` (see `contained`); every entry is checked before anything goes."""
    paths = [contained(folder, entry, listing) for entry in entries]
    emptied = set()
    for path in paths:
        if path.is_symlink() or path.is_file():
            path.unlink()
            emptied.update(parent for parent in path.parents if parent.is_relative_to(folder) and parent != folder)
    for parent in sorted(emptied, key=lambda path: len(path.parts), reverse=True):
        if parent.is_dir() and not parent.is_symlink() and not any(parent.iterdir()):
            parent.rmdir()


def remove_interrupted_writes(output_dir: str | Path) -> None:
    """Remove the temporary files a killed atomic write left in `output_dir` itself (their names are ours)."""
    output_dir = Path(output_dir)
    if output_dir.is_dir():
        for path in output_dir.iterdir():
            if INTERRUPTED_WRITE.fullmatch(path.name) and path.is_file() and not path.is_symlink():
                path.unlink()


def clear_previous_run(output_dir: str | Path) -> None:
    """Remove what an earlier run wrote into `output_dir` (its manifest's files and its checkpoints),
    keeping everything else, which is named in a warning."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return
    remove_listed(output_dir, _manifest_files(output_dir), output_dir / RUN_MANIFEST)
    for checkpoint in output_dir.iterdir():
        if CHECKPOINT_FOLDER.fullmatch(checkpoint.name) and checkpoint.is_dir() and not checkpoint.is_symlink():
            shutil.rmtree(checkpoint)
    (output_dir / RUN_MANIFEST).unlink(missing_ok=True)
    remove_interrupted_writes(output_dir)
    kept = sorted(str(path.relative_to(output_dir)) for path in output_dir.rglob("*") if path.is_file())
    if kept:
        logger.warning("--overwrite_output_dir: kept %d file(s) in %s that no run wrote: %s",
                       len(kept), output_dir, ", ".join(kept[:5]))


def snapshot(output_dir: str | Path) -> dict[str, int]:
    """Relative path → modification time (ns) of every file under `output_dir`."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return {}
    return {str(path.relative_to(output_dir)): path.stat().st_mtime_ns
            for path in output_dir.rglob("*") if path.is_file()}


# torch.save, safetensors and the Rust tokenizers write from native code, which no audit event sees: a file of
# theirs new or changed since the run began is the run's (nobody else writes weights or tokenizers into a run).
NATIVE_WRITES = (".safetensors", ".bin", ".pt", ".pth", "tokenizer.json")
_recorders: list[WrittenFiles] = []


def _audit(event: str, arguments: tuple) -> None:
    if not _recorders or event not in ("open", "os.rename"):
        return
    try:
        if event == "open":
            path, mode, flags = arguments
            writes = (mode is not None and any(letter in mode for letter in "wax+")) or (
                mode is None and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
        else:
            path, writes = arguments[1], arguments[3] in (None, -1)  # (src, dst, src_dir_fd, dst_dir_fd)
        if writes and isinstance(path, (str, bytes, os.PathLike)):
            for recorder in _recorders:
                recorder.saw(os.fsdecode(path))
    except Exception:  # an audit hook's error would fail the user's open(); a path it cannot read is not ours
        pass


class WrittenFiles:
    """The files this process writes under `folder` while the context is open: every `open` for writing and
    every rename onto a path there, seen by an audit hook (`sys.addaudithook`). What another process writes
    meanwhile (a user's notes, a cache) is never among them."""

    _hooked = False

    def __init__(self, folder: str | Path):
        self.folder = os.path.abspath(folder)
        self.paths: set[str] = set()

    def saw(self, path: str) -> None:
        full = os.path.abspath(path)
        if full.startswith(self.folder + os.sep):
            self.paths.add(os.path.relpath(full, self.folder))

    def __enter__(self) -> WrittenFiles:
        if not WrittenFiles._hooked:
            sys.addaudithook(_audit)  # for the process's life: hooks cannot be removed, so one serves every run
            WrittenFiles._hooked = True
        _recorders.append(self)
        return self

    def __exit__(self, *exception) -> None:
        _recorders.remove(self)


def write_manifest(output_dir: str | Path, before: dict[str, int], written: Iterable[str],
                   to_come: Iterable[str] = ()) -> None:
    """List the files this run wrote: those it opened for writing (`written`, see `WrittenFiles`), model
    weights new or changed since `before` (the folder when the run began), those an earlier part of this run
    listed (a resumed run), every checkpoint's files, and `to_come`, the files the run writes after the
    manifest (results.json, whose presence means finished). A file in a hidden folder (a cache, when the
    output folder is a home folder) is never listed, nor one the run did not write."""
    output_dir = Path(output_dir)
    now = snapshot(output_dir)
    earlier = set(_manifest_files(output_dir))
    written = set(written)

    def the_runs(path: str, mtime: int) -> bool:
        if path == RUN_MANIFEST or any(part.startswith(".") for part in PurePath(path).parts[:-1]):
            return False
        return (path in written or path in earlier or path.startswith(f"{PREFIX_CHECKPOINT_DIR}-")
                or (path.endswith(NATIVE_WRITES) and before.get(path) != mtime))

    listed = sorted({path for path, mtime in now.items() if the_runs(path, mtime)} | set(to_come))
    write_json(output_dir / RUN_MANIFEST, {"files": listed}, indent=1)
