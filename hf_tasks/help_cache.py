"""`--help` at once after the first time: a command's help text, kept per command and versions.

Building the help imports transformers' `TrainingArguments` and every argument dataclass, seconds of
work for a page of text. The first `--help` (or `--help-all`) of a recipe or command stores the text
(`store`); later ones print it before anything heavy is imported. Each recipe, and each command module that
`python -m` runs (the study's `__main__`, compare, fetch, export), imports this module first, for that side
effect:

    import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

and `hf-tasks` names the file whose help it is (`answer_from_cache`) before it imports that file.
The text is keyed by that file, the hf_tasks source files, the Python version, the terminal's width and the
versions of the packages whose arguments and defaults it shows, and by the program as typed (its usage line names
it); a change to any of them builds it anew. Standard library only (and `hf_tasks.errors`, which is too): it runs
before the heavy imports.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

from hf_tasks.errors import program_name

HELP_FLAGS = ("-h", "--help")
HELP_ALL_FLAG = "--help-all"
# Packages whose argument classes or defaults the help text shows.
PACKAGES = ("transformers", "torch", "accelerate", "peft")
PACKAGE_ROOT = Path(__file__).resolve().parent
CACHE_VARIABLE = "HF_TASKS_CACHE"


def cache_folder() -> Path:
    """$HF_TASKS_CACHE/help, else $XDG_CACHE_HOME/hf_tasks/help, else ~/.cache/hf_tasks/help."""
    if os.environ.get(CACHE_VARIABLE):
        return Path(os.environ[CACHE_VARIABLE]) / "help"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hf_tasks" / "help"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def _program() -> str:
    """The program the help's usage line names (`hf-tasks fetch`, `python -m hf_tasks.data.fetch`, `fetch.py`),
    as a part of a file name: each way of running a file keeps its own text, so asking one way does not throw
    away the other's."""
    return re.sub(r"[^A-Za-z0-9]+", "_", program_name()).strip("_") or "program"


def cache_path(recipe: Path, whole: bool = False) -> Path:
    """Where `recipe`'s help text (`whole`: its --help-all) is kept for this file, the program running it,
    hf_tasks code and package versions."""
    digest = hashlib.sha256(recipe.read_bytes())
    for source in sorted(PACKAGE_ROOT.rglob("*.py")):
        digest.update(source.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0" + source.read_bytes())
    digest.update(sys.version.encode())
    # The text is wrapped to the terminal's width (COLUMNS).
    digest.update(f"columns={shutil.get_terminal_size().columns}\0".encode())
    for package in PACKAGES:
        digest.update(f"{package}={_version(package)}\0".encode())
    return cache_folder() / ("all" if whole else "") / f"{recipe.stem}-{_program()}-{digest.hexdigest()[:24]}.txt"


# The file whose help is asked for, when it is not the running script (`hf-tasks run farstail --help`).
_named_source: Path | None = None


def _recipe(argv: list[str]) -> tuple[Path, bool] | None:
    """The file whose help was asked for (the running script unless `hf-tasks` named one) and whether the
    whole help (--help-all) was, or None when no help was asked for."""
    whole = HELP_ALL_FLAG in argv
    if not whole and not any(flag in argv for flag in HELP_FLAGS):
        return None
    if _named_source is not None:
        return _named_source, whole
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if not script or not script.endswith(".py"):
        return None
    return Path(script).resolve(), whole


def print_cached(argv: list[str] | None = None) -> None:
    """Print the asked-for cached help and exit, when help was asked for and is cached."""
    asked = _recipe(sys.argv[1:] if argv is None else argv)
    if asked is None:
        return
    try:
        text = cache_path(*asked).read_text(encoding="utf-8")
    except OSError:
        return
    print(text)
    raise SystemExit(0)


def answer_from_cache(source: Path, argv: list[str]) -> None:
    """For a command that is not the running script: `source`'s help is the one asked for (and stored once
    built); print it and exit when it is cached."""
    global _named_source
    _named_source = Path(source).resolve()
    print_cached(argv)


def store(text: str, argv: list[str] | None = None) -> None:
    """Keep `text` as the asked-for help (replacing the texts this program kept for the file's earlier
    versions); a cache that cannot be written is skipped, as the help is printed anyway."""
    asked = _recipe(sys.argv[1:] if argv is None else argv)
    if asked is None:
        return
    from hf_tasks.files import write_atomic

    recipe = asked[0]
    path = cache_path(*asked)
    try:
        for stale in path.parent.glob(f"{recipe.stem}-{_program()}-*.txt"):
            stale.unlink(missing_ok=True)
        write_atomic(path, text)
    except OSError:
        pass


print_cached()
