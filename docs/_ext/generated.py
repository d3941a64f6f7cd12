"""The parts of the site generated from the code, so they cannot drift from it: each recipe's flag
table (what its `--help` shows, with the whole help text), the Trainer's options, each recipe's configs
(one line each, from the files' header comments), the module map (from the modules' docstrings, in the
layers `tests/test_layers.py` checks) and the benchmark table (from `tests/benchmarks/results/`); and a check
that no built page loads anything from another host.

Used as MyST directives:

    ```{flag-table} farstail
    ```
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
# A tag that makes the browser fetch from another host: the site must work offline.
REMOTE_ASSET = re.compile(r"<(?:link|script|img|iframe)\b[^>]*\b(?:href|src)=[\"'](?:https?:)?//[^\"']*", re.I)

REPO = Path(__file__).resolve().parents[2]


def recipe_arguments(recipe: str) -> tuple[tuple[type, ...], tuple[str, ...]]:
    """A recipe's argument groups and the shared arguments it does not read, from its declaration
    (`hf_tasks.registry`): the one place the docs learn what a recipe takes."""
    from hf_tasks import registry

    declared = registry.load(recipe)
    return declared.arguments, tuple(declared.unused)


def recipe_option_groups(recipe: str) -> list[tuple[str, list[argparse.Action]]]:
    """The option groups the recipe's `--help` shows, heading and argparse actions."""
    from hf_tasks.cli_help import option_groups
    from hf_tasks.parsing import build_parser

    arguments, unused = recipe_arguments(recipe)
    return option_groups(build_parser(*arguments), frozenset(unused))


def trainer_options() -> list[argparse.Action]:
    """Every option of the Trainer's argument group (`--help-all` lists them), in declaration order."""
    from hf_tasks.args import TrainingArguments
    from hf_tasks.parsing import build_parser

    parser = build_parser(TrainingArguments)
    seen, actions = set(), []
    for action in parser._actions:
        # The first action of a destination is the flag itself; bool fields add a --no_ complement.
        if action.dest in seen or action.dest in ("help", "config"):
            continue
        seen.add(action.dest)
        actions.append(action)
    return actions


def flag_row(action: argparse.Action) -> tuple[str, str, str, str]:
    """(flag, type, default, help) of one option, as the table shows them."""
    if action.choices:
        kind = "one of " + ", ".join(str(choice) for choice in action.choices)
    elif action.const is True or action.type is bool or getattr(action.type, "__name__", "") == "string_to_bool":
        kind = "bool"
    else:
        kind = getattr(action.type, "__name__", "text") if action.type is not None else "text"
    if action.nargs in ("+", "*"):
        kind = f"list of {kind}"
    default = "" if action.default in (None, argparse.SUPPRESS) else str(action.default)
    if action.required:
        default = "(required)"
    return action.option_strings[0], kind, default, (action.help or "").replace("%%", "%")


def config_line(path: Path) -> str:
    """The first sentence of a config file's header comment (the lines before its first key)."""
    comment = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line.lstrip("#").strip()
        if text.startswith(("accelerate launch", "python ")):
            break
        comment.append(text)
    text = " ".join(comment)
    return re.split(r"(?<=\.)\s+(?=[A-Z])", text, maxsplit=1)[0]


def module_rows() -> list[tuple[int, str, str]]:
    """(layer, dotted module name, the first sentence of its docstring's first paragraph) for every module of
    hf_tasks, bottom layer first."""
    sys.path.insert(0, str(REPO))
    from tests.test_layers import LAYER_OF, MODULES, part_of

    rows = []
    for module, path in MODULES.items():
        if "metrics.modules" in module or module.endswith("__main__"):
            continue  # evaluate's Space files and `python -m` entry points are not the package's API
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        paragraph = " ".join(docstring.split("\n\n")[0].split())
        first = re.split(r"(?<=\.)\s+(?=[A-Z`(])", paragraph, maxsplit=1)[0]
        rows.append((LAYER_OF[part_of(module)], module, first))
    return sorted(rows)


def _cell(text: str, literal: bool = False) -> nodes.entry:
    entry = nodes.entry()
    if text:
        paragraph = nodes.paragraph()
        paragraph += nodes.literal(text=text) if literal else _inline_code(text)
        entry += paragraph
    return entry


def _inline_code(text: str) -> list[nodes.Node]:
    """Plain text in which `backticked` parts are shown as code."""
    parts = re.split(r"`([^`]+)`", text)
    return [nodes.literal(text=part) if index % 2 else nodes.Text(part) for index, part in enumerate(parts) if part]


def table(headings: tuple[str, ...], rows: list[tuple[str, ...]], literal_columns: tuple[int, ...] = (0,),
          widths: tuple[int, ...] | None = None) -> nodes.table:
    table_node = nodes.table(classes=["generated"])
    group = nodes.tgroup(cols=len(headings))
    table_node += group
    for width in widths or (1,) * len(headings):
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    header = nodes.row()
    for heading in headings:
        header += _cell(heading)
    head += header
    group += head
    body = nodes.tbody()
    for cells in rows:
        row = nodes.row()
        for index, text in enumerate(cells):
            row += _cell(text, literal=index in literal_columns)
        body += row
    group += body
    return table_node


class FlagTable(Directive):
    """Every option a recipe's `--help` shows, one table per heading."""

    required_arguments = 1

    def run(self):
        output = []
        for heading, actions in recipe_option_groups(self.arguments[0]):
            section = nodes.rubric(text=heading[0].upper() + heading[1:])
            output += [section, table(("flag", "type", "default", "help"),
                                      [flag_row(action) for action in actions], literal_columns=(0, 2),
                                      widths=(3, 2, 2, 8))]
        return output


class TrainerFlagTable(Directive):
    """Every Trainer option, the ones `--help-all` adds to each training recipe's own."""

    def run(self):
        return [table(("flag", "type", "default", "help"), [flag_row(action) for action in trainer_options()],
                      literal_columns=(0, 2), widths=(3, 2, 2, 8))]


class ConfigList(Directive):
    """A recipe's configs, one line each from the files' header comments."""

    required_arguments = 1

    def run(self):
        from hf_tasks import registry

        folder = registry.configs_folder(self.arguments[0])
        rows = [(path.name, config_line(path))
                for path in sorted(folder.glob("*.yaml"))]
        return [table(("config", "what it runs"), rows, widths=(4, 8))]


class ModuleMap(Directive):
    """Every module of the package by layer, with the first sentence of its docstring."""

    def run(self):
        rows = [(str(layer), module, first) for layer, module, first in module_rows()]
        return [table(("layer", "module", "what it is"), rows, literal_columns=(1,), widths=(1, 4, 10))]


class BenchmarkTable(Directive):
    """The recorded benchmark figures (tests/benchmarks/results/), one row per benchmark."""

    def run(self):
        sys.path.insert(0, str(REPO))
        from tests.benchmarks.summary_table import rows

        return [table(("what", "command (python -m tests.benchmarks.…)", "recorded (median, range over alternated "
                       "rounds)"), rows(), literal_columns=(1,), widths=(3, 2, 8))]


def refuse_remote_assets(app, exception) -> None:
    """Warn (an error under -W) for every page that would load a font, script, style or image from another host."""
    if exception is not None or app.builder.format != "html":
        return
    for page in sorted(Path(app.outdir).rglob("*.html")):
        for tag in REMOTE_ASSET.findall(page.read_text(encoding="utf-8")):
            LOGGER.warning("%s loads %s from another host; the site must work offline", page.name, tag)


def setup(app):
    app.connect("build-finished", refuse_remote_assets)
    app.add_directive("flag-table", FlagTable)
    app.add_directive("trainer-flag-table", TrainerFlagTable)
    app.add_directive("config-list", ConfigList)
    app.add_directive("module-map", ModuleMap)
    app.add_directive("benchmark-table", BenchmarkTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
