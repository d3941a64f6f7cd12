"""`--help` at once after the first time: a recipe's grouped help text, kept per recipe and versions.

Building the help imports transformers' `TrainingArguments` and every argument dataclass, seconds of
work for a page of text. The first `--help` of a recipe stores the text (`store`); later ones print it
before anything heavy is imported. Each recipe imports this module first, for that side effect:

    import hf_tasks.help_cache  # noqa: F401  (prints a cached --help and exits, before the imports below)

The text is keyed by the recipe file, the hf_tasks source files, the Python version and the versions of
the packages whose arguments and defaults it shows; a change to any of them builds it anew. `--help-all`
is always built. Standard library only: it runs before the heavy imports.
"""

from __future__ import annotations

import hashlib
import os
import sys
from importlib import metadata
from pathlib import Path

HELP_FLAGS = ("-h", "--help")
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


def cache_path(recipe: Path) -> Path:
    """Where `recipe`'s help text is kept for this recipe file, hf_tasks code and package versions."""
    digest = hashlib.sha256(recipe.read_bytes())
    for source in sorted(PACKAGE_ROOT.rglob("*.py")):
        digest.update(source.relative_to(PACKAGE_ROOT).as_posix().encode() + b"\0" + source.read_bytes())
    digest.update(sys.version.encode())
    for package in PACKAGES:
        digest.update(f"{package}={_version(package)}\0".encode())
    return cache_folder() / f"{recipe.stem}-{digest.hexdigest()[:24]}.txt"


def _recipe(argv: list[str]) -> Path | None:
    """The running script when it was asked for the short help, else None."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    if not script or not script.endswith(".py") or not any(flag in argv for flag in HELP_FLAGS):
        return None
    return Path(script).resolve()


def print_cached(argv: list[str] | None = None) -> None:
    """Print the running recipe's cached help and exit, when it was asked for and is cached."""
    recipe = _recipe(sys.argv[1:] if argv is None else argv)
    if recipe is None:
        return
    try:
        text = cache_path(recipe).read_text(encoding="utf-8")
    except OSError:
        return
    print(text)
    raise SystemExit(0)


def store(text: str, argv: list[str] | None = None) -> None:
    """Keep `text` as the running recipe's help (replacing texts kept for its earlier versions); a cache
    that cannot be written is skipped, as the help is printed anyway."""
    recipe = _recipe(sys.argv[1:] if argv is None else argv)
    if recipe is None:
        return
    from hf_tasks.files import write_atomic

    path = cache_path(recipe)
    try:
        for stale in path.parent.glob(f"{recipe.stem}-*.txt"):
            stale.unlink(missing_ok=True)
        write_atomic(path, text)
    except OSError:
        pass


print_cached()
