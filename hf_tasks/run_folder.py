"""The run folder's rules: where a run may write, what resuming means, which files belong to a run.

- A run starts only in a new or empty `--output_dir`, in one it resumes (`--resume_from_checkpoint`),
  or with `--overwrite_output_dir`. Anything else stops before data is read, naming the fix.
- A finished run lists the files it wrote in `RUN_MANIFEST`. Overwriting the folder for a new
  training run removes exactly those files and the `checkpoint-*` folders, so nothing from the
  earlier run stays beside the new results; files the toolkit did not write stay where they are.
- `--resume_from_checkpoint auto` resumes from the newest checkpoint when there is one and starts
  fresh when there is none (a requeue script can pass it on every launch); `latest` (or `true`)
  requires a checkpoint; anything else is a checkpoint folder.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)

RUN_MANIFEST = ".hf_tasks-run.json"
RESUME_IF_POSSIBLE = "auto"
RESUME_REQUIRED = frozenset({"latest", "true", "yes"})
NO_RESUME = frozenset({"", "false", "no", "none"})


def resolve_checkpoint(training_args) -> str | None:
    """`--resume_from_checkpoint` as a checkpoint folder to resume from, or None to start fresh."""
    requested = training_args.resume_from_checkpoint
    word = str(requested).lower() if requested is not None else ""
    if word in NO_RESUME:
        return None
    output_dir = Path(training_args.output_dir)
    if word == RESUME_IF_POSSIBLE or word in RESUME_REQUIRED:
        last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
        if last is None and word in RESUME_REQUIRED:
            raise BadInputError(
                f"--resume_from_checkpoint {requested}: no {PREFIX_CHECKPOINT_DIR}-* folder in {output_dir}; "
                f"pass --resume_from_checkpoint {RESUME_IF_POSSIBLE} to start fresh when there is none."
            )
        return last
    if not Path(requested).is_dir():
        raise BadInputError(f"--resume_from_checkpoint {requested}: no such checkpoint folder; check the path.")
    return str(requested)


def check_output_dir(training_args) -> None:
    """Stop (BadInputError) when this run would write over files in `--output_dir` without being asked."""
    output_dir = Path(training_args.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise BadInputError(f"--output_dir {output_dir}: is a file; give a folder.")
    entries = sorted(path.name for path in output_dir.iterdir()) if output_dir.is_dir() else []
    resumes = bool(training_args.do_train) and resolve_checkpoint(training_args) is not None  # checks the flag too
    # Plain transformers.TrainingArguments (5.x) has no overwrite flag; hf_tasks.args.TrainingArguments does.
    if not entries or resumes or getattr(training_args, "overwrite_output_dir", False):
        return
    if (output_dir / RUN_MANIFEST).is_file() or (output_dir / "results.json").is_file():
        what = "a finished run (results.json)"
    elif any(name.startswith(f"{PREFIX_CHECKPOINT_DIR}-") for name in entries):
        what = "checkpoints of an unfinished run"
    else:
        shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
        what = f"files ({shown})"
    raise BadInputError(
        f"--output_dir {output_dir} already holds {what}; give a new --output_dir, continue it with "
        f"--resume_from_checkpoint {RESUME_IF_POSSIBLE}, or replace it with --overwrite_output_dir."
    )


def _manifest_files(output_dir: Path) -> list[str]:
    try:
        return json.loads((output_dir / RUN_MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def clear_previous_run(output_dir: str | Path) -> None:
    """Remove what an earlier run wrote into `output_dir` (its manifest's files and its checkpoints),
    keeping everything else, which is named in a warning."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        return
    for relative in _manifest_files(output_dir):
        (output_dir / relative).unlink(missing_ok=True)
    for checkpoint in output_dir.glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        if checkpoint.is_dir():
            shutil.rmtree(checkpoint)
    (output_dir / RUN_MANIFEST).unlink(missing_ok=True)
    for folder in sorted((path for path in output_dir.rglob("*") if path.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
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


def write_manifest(output_dir: str | Path, before: dict[str, int]) -> None:
    """List the files this run wrote: new or changed since `before` (the folder when the run began),
    those an earlier part of this run listed (a resumed run), and every checkpoint's files."""
    output_dir = Path(output_dir)
    now = snapshot(output_dir)
    earlier = set(_manifest_files(output_dir))
    written = sorted(
        path for path, mtime in now.items()
        if path != RUN_MANIFEST and (before.get(path) != mtime or path in earlier
                                     or path.startswith(f"{PREFIX_CHECKPOINT_DIR}-"))
    )
    (output_dir / RUN_MANIFEST).write_text(json.dumps({"files": written}, indent=1), encoding="utf-8")
