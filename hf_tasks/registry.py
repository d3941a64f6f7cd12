"""The recipes, each declared once in its own file, and how to find them.

A recipe is a file `recipes/<name>.py` whose module docstring opens with a summary (its first paragraph)
and which ends with its declaration:

    RECIPE = Recipe("farstail", __doc__, ARGUMENTS, main, unused=("data_dir",),
                    model_card=ModelCardFacts("text-classification", "FarsTail", language=("fa",), tags=(...)))

    if __name__ == "__main__":
        RECIPE.cli()

Its configs are `recipes/configs/<name>/*.yaml` (`base.yaml` is shared, not an experiment). Everything
that needs a fact about recipes reads it here: the `hf-tasks` command, the study's recipe lookup, the help
cache, the model card, the tests and benchmarks that loop over recipes. Adding a recipe is adding its
file, its configs and its tests.

Listing (`recipe_names`, `summary`, `configs`, `find_config`) reads files only, so `hf-tasks list` and a
cached `--help` answer at once; `load` imports the recipe (and with it transformers). In a checkout the
recipes are the top-level `recipes/` folder; a plain `pip install` ships that folder as the package
`hf_tasks_recipes`, beside `hf_tasks`, so the configs' relative paths to `hf_tasks/samples` hold in both.
Light at import time (no transformers).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from hf_tasks.config_files import SHARED_BASE_NAME
from hf_tasks.errors import BadInputError

if TYPE_CHECKING:
    from hf_tasks.run_state import RunState

PACKAGE_ROOT = Path(__file__).resolve().parent
# The name the recipes folder is imported (and installed) under.
RECIPES_PACKAGE = "hf_tasks_recipes"


@dataclass(frozen=True)
class ModelCardFacts:
    """What the Hub's metadata says about every model a recipe trains."""

    task_type: str  # a Hub task id: text-classification, question-answering, ...
    dataset: str  # the dataset's name in words
    tags: tuple[str, ...] = ()
    language: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recipe:
    """One recipe, declared once at the end of its file."""

    name: str
    doc: str  # the module docstring: its first paragraph is the summary, all of it opens --help
    arguments: tuple[type, ...]  # the argument groups `main` reads, in order
    main: Callable[[RunState], Any]  # main(state): the run object `parse` gives
    unused: tuple[str, ...] = ()  # options of the shared groups it never reads: hidden from --help and refused
    model_card: ModelCardFacts | None = None  # None: the recipe trains no model
    writes_data_dir: bool = False  # may write its synthetic demo data into --data_dir

    @property
    def summary(self) -> str:
        return _summary(self.doc)

    @property
    def path(self) -> Path:
        return recipe_path(self.name)

    @property
    def trains(self) -> bool:
        return self.model_card is not None

    def parse(self, args: list[str] | None = None) -> RunState:
        """The run object from `--config` and the command line (`args`, else sys.argv)."""
        from hf_tasks.args import parse

        return parse(*self.arguments, args=args, description=self.doc, unused=self.unused)

    def option_strings(self) -> set[str]:
        """Every flag the recipe takes (earlier names and --no_ complements included), `--config` too."""
        from hf_tasks.parsing import build_parser

        return {option for action in build_parser(*self.arguments)._actions for option in action.option_strings}

    def cli(self, args: list[str] | None = None) -> Any:
        """Parse and run, a user's mistake said in one line (the recipe file's `__main__`)."""
        from hf_tasks.errors import one_line_errors

        with one_line_errors():
            return self.main(self.parse(args))

    def card(self, description: str) -> dict[str, Any]:
        """The `model_card` the runner writes: these facts, the recipe's file, and this run's description."""
        facts = self.model_card
        card = {"recipe": f"recipes/{self.name}.py", "description": description}
        if facts is not None:
            card.update(task_type=facts.task_type, dataset=facts.dataset, tags=list(facts.tags))
            if facts.language:
                card["language"] = list(facts.language)
        return card


def recipes_folder() -> Path:
    """The checkout's top-level `recipes/`, else the installed copy (`hf_tasks_recipes`)."""
    checkout = PACKAGE_ROOT.parent / "recipes"
    if (checkout / "configs").is_dir():
        return checkout
    spec = importlib.util.find_spec(RECIPES_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"no recipes beside {PACKAGE_ROOT} and no {RECIPES_PACKAGE} package installed")
    return Path(next(iter(spec.submodule_search_locations)))


def recipe_names() -> list[str]:
    """Every recipe, by name, in alphabetical order."""
    return sorted(path.stem for path in recipes_folder().glob("*.py") if not path.stem.startswith("_"))


def recipe_path(name: str) -> Path:
    return recipes_folder() / f"{name}.py"


def _summary(doc: str | None) -> str:
    """The docstring's first paragraph, as one line."""
    return " ".join((doc or "").strip().split("\n\n", 1)[0].split())


def summary(name: str) -> str:
    """The recipe's one-line summary, read from its file without importing it."""
    return _summary(ast.get_docstring(ast.parse(recipe_path(name).read_text(encoding="utf-8"))))


def configs_folder(name: str) -> Path:
    return recipes_folder() / "configs" / name


def configs(name: str) -> list[str]:
    """The recipe's experiment configs by name (`tiny`, `parsbert`, ...), its shared base left out."""
    return sorted(path.stem for path in configs_folder(name).glob("*.yaml") if path.name != SHARED_BASE_NAME)


def having_config(config: str) -> list[str]:
    """The recipes with a config of this name: `tiny`, the CPU demo, marks those the tests train."""
    return [name for name in recipe_names() if config in configs(name)]


def check_name(name: str) -> str:
    if name not in recipe_names():
        raise BadInputError(f"no recipe named {name!r}; the recipes are {', '.join(recipe_names())} "
                            "(hf-tasks list shows them with their configs).")
    return name


def find_config(config: str, recipe: str | None = None) -> Path:
    """`config` as a file: a path as given when it is one, else a packaged config by name: `farstail/tiny`,
    or `tiny` of `recipe`."""
    if Path(config).is_file():
        return Path(config)
    folder, _, stem = config.removesuffix(".yaml").rpartition("/")
    owner = folder or recipe
    packaged = configs_folder(owner) / f"{stem}.yaml" if owner in recipe_names() else None
    if packaged is None or not packaged.is_file():
        names = [f"{name}/{config_name}" for name in ([owner] if owner in recipe_names() else recipe_names())
                 for config_name in configs(name)]
        raise BadInputError(f"--config {config}: no such file, and no packaged config of that name "
                            f"({', '.join(names)}); give a path or one of those names.")
    return packaged


def load(name: str) -> Recipe:
    """The recipe's declaration, its module imported as `hf_tasks_recipes.<name>`."""
    check_name(name)
    if RECIPES_PACKAGE not in sys.modules:
        folder = recipes_folder()
        spec = importlib.util.spec_from_file_location(RECIPES_PACKAGE, folder / "__init__.py",
                                                      submodule_search_locations=[str(folder)])
        package = importlib.util.module_from_spec(spec)
        sys.modules[RECIPES_PACKAGE] = package
        spec.loader.exec_module(package)
    return importlib.import_module(f"{RECIPES_PACKAGE}.{name}").RECIPE
