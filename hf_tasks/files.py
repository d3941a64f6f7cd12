"""Files a later step or a later run trusts: written whole or not at all, read as "not there yet" when cut short.

`write_atomic` writes to a temporary file in the same folder, flushes and fsyncs it, then renames it over
the target (`os.replace`, atomic on POSIX and Windows within one filesystem) and fsyncs the folder, so a
kill or a full disk at any moment leaves either the old file or the new one, never half of one.
`read_json` is the matching reader: a file that is missing, empty or not valid JSON gives None, which a
reader treats as "that step has not finished".
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; some filesystems (and Windows) cannot open a folder, which is fine.
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to (by any library: `savefig`, `save_pretrained` of one
    file, ...); on leaving the block without an error it is fsynced and renamed over `path`, otherwise
    it is removed and `path` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        # mkstemp creates 0600; a finished file gets the permissions an ordinary open() would give it.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def write_atomic(path: str | Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    """Write `content` (text or bytes) to `path` whole or not at all."""
    path = Path(path)
    data = content.encode(encoding) if isinstance(content, str) else content
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return path


def write_json(path: str | Path, value: Any, **dumps_kwargs) -> Path:
    """`value` as JSON (UTF-8, indented unless told otherwise), written atomically."""
    dumps_kwargs.setdefault("indent", 2)
    dumps_kwargs.setdefault("ensure_ascii", False)
    return write_atomic(path, json.dumps(value, **dumps_kwargs) + "\n")


def write_with(path: str | Path, write: Callable[[io.StringIO], Any]) -> Path:
    """Text built by `write(handle)` (a csv.writer, say), written atomically once it is complete."""
    buffer = io.StringIO(newline="")
    write(buffer)
    return write_atomic(path, buffer.getvalue())


def read_json(path: str | Path) -> Any | None:
    """The JSON in `path`, or None when it is missing, unreadable or cut short (a writer not finished)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def visible_files(folder: Path) -> Iterator[Path]:
    """Every file under `folder` at any depth, in name order, leaving out hidden ones and never entering a
    hidden folder: a fetch's unpacking staging (".female-x1y2"), a Mac's resource forks, editor state."""
    for parent, folders, files in os.walk(folder, followlinks=True):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        yield from (Path(parent) / name for name in sorted(files) if not name.startswith("."))

