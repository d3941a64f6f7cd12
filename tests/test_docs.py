"""The docs' examples are checked: every code block on a page carries a marker line (a MyST comment) saying how,
and each check here could fail on a stale page.

    % check: command           recipe commands parse with the recipe's own parser and config (the tiny.yaml demos
                               are trained end to end by the recipes' own tests); study commands name existing
                               configs and options the study or the recipe knows; `python -m X` finds X
    % check: config RECIPE     every key is an option of the recipe
    % check: doctest           the `>>>` lines run and print what the page shows
    % check: adapter           the dataset adapter loads good rows and stops at, or skips, a bad one
    % not run: REASON          needs a GPU, the Hub, the real data, or installs packages

Also: each recipe page lists every option its --help shows, the bad-inputs page has a row for every case
tests/test_bad_inputs.py runs, and the README is the short front door whose test command CI runs.
"""

from __future__ import annotations

import doctest
import importlib.util
import itertools
import json
import re
import shlex
import sys
import types
from pathlib import Path

import pytest
import yaml

from hf_tasks import registry
from hf_tasks.args import parse
from hf_tasks.options import DataArguments
from hf_tasks.cli_help import option_groups, short_help
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.errors import BadInputError
from hf_tasks.parsing import build_parser
from tests.conftest import REPO

DOCS = REPO / "docs"
sys.path.insert(0, str(DOCS / "_ext"))
from generated import flag_row, recipe_arguments, recipe_option_groups, refuse_remote_assets  # noqa: E402

PAGES = sorted(DOCS.rglob("*.md"))
PAGES = [page for page in PAGES if "_build" not in page.parts]
RECIPE_NAMES = registry.recipe_names()
# A fenced block with a language (```bash); directives (```{flag-table}) are not examples.
BLOCK = re.compile(r"^(?P<marker>%[^\n]*\n)?```(?P<language>[a-z]+)\n(?P<body>.*?)^```$", re.M | re.S)


def blocks(kind: str | None = None) -> list[tuple[str, str, str]]:
    """(page, marker, body) of every fenced code block, or of those whose marker starts with `kind`."""
    found = []
    for page in PAGES:
        for match in BLOCK.finditer(page.read_text(encoding="utf-8")):
            marker = (match["marker"] or "").lstrip("%").strip()
            if kind is None or marker.startswith(kind):
                found.append((str(page.relative_to(REPO)), marker, match["body"]))
    return found


def block_id(block) -> str:
    return f"{block[0]}:{block[2].splitlines()[0][:50]}"


def test_every_code_block_says_how_it_is_checked():
    unmarked = [block_id(block) for block in blocks() if not block[1].startswith(("check: ", "not run: "))]
    assert not unmarked, f"code blocks without a '% check: ...' or '% not run: reason' line: {unmarked}"
    assert len(blocks("check: ")) >= 15


def commands(body: str) -> list[list[str]]:
    """The block's commands as argument lists: continuation lines joined, comments and VAR=value prefixes
    dropped, `{a,b}` expanded as the shell does."""
    found = []
    for line in body.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            words.pop(0)
        if words:
            found.append(list(itertools.chain.from_iterable(_expand(word) for word in words)))
    return found


def _expand(word: str) -> list[str]:
    match = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not match:
        return [word]
    return [expanded for part in match[1].split(",")
            for expanded in _expand(word[: match.start()] + part + word[match.end():])]


def recipe_call(words: list[str]) -> tuple[str, list[str]] | None:
    """(recipe name, its arguments) when the command runs a recipe through python, accelerate or torchrun."""
    for index, word in enumerate(words):
        if word.startswith("recipes/") and word.endswith(".py"):
            launcher = words[:index]
            for option, value in zip(launcher, launcher[1:]):
                if option == "--config_file":
                    assert (REPO / value).is_file(), f"accelerate config {value} does not exist"
            return Path(word).stem, words[index + 1:]
    return None


def check_recipe_command(recipe: str, arguments: list[str]) -> None:
    types_, unused = recipe_arguments(recipe)
    parse(*types_, args=arguments, unused=unused)


def check_module_command(words: list[str]) -> None:
    module, arguments = words[words.index("-m") + 1], words[words.index("-m") + 2:]
    assert importlib.util.find_spec(module) is not None, f"no module {module}"
    if module == "hf_tasks.data.fetch":
        check_fetch_command(arguments)
    if module == "hf_tasks.study":
        check_study_command(arguments)


def check_fetch_command(arguments: list[str]) -> None:
    from hf_tasks.data.fetch import SOURCES

    assert arguments[0] in SOURCES or arguments[0] == "--help", f"fetch knows no {arguments[0]!r}"


def check_study_command(arguments: list[str]) -> None:
    from hf_tasks.study.cli import SearchOptions, SlurmOptions, StudyOptions

    configs = list(itertools.takewhile(lambda word: not word.startswith("-"), arguments))  # configs come first
    assert configs, "a study command names its configs"
    recipe_options = set()
    for config in configs:
        path = REPO / config if config.endswith(".yaml") else registry.find_config(config)
        assert path.is_file(), f"no config {config}"
        types_, _ = recipe_arguments(path.parent.name)
        recipe_options |= {option for action in build_parser(*types_)._actions for option in action.option_strings}
    study_options = {option for action in build_parser(StudyOptions, SearchOptions, SlurmOptions)._actions
                     for option in action.option_strings}
    unknown = [word for word in arguments if word.startswith("--") and word not in study_options | recipe_options]
    assert not unknown, f"options neither the study nor the recipe knows: {unknown}"


def check_hf_tasks_command(arguments: list[str]) -> None:
    """`hf-tasks COMMAND ...`: a run parses with the recipe's parser (a packaged config found by name), a study
    as `python -m hf_tasks.study` would; the others name a command hf-tasks has."""
    from hf_tasks.command import COMMANDS, NUM_PROCESSES_FLAG
    from hf_tasks.launch import take_option

    command, rest = arguments[0], arguments[1:]
    assert command in COMMANDS, f"hf-tasks has no command {command!r}"
    if command == "run" and "--help" not in rest:
        recipe, (_, rest) = rest[0], take_option(rest[1:], NUM_PROCESSES_FLAG)
        if "--config" in rest:
            rest[rest.index("--config") + 1] = str(registry.find_config(rest[rest.index("--config") + 1], recipe))
        check_recipe_command(recipe, rest)
    elif command == "study":
        check_study_command(rest)
    elif command == "fetch":
        check_fetch_command(rest)


def check_command(words: list[str]) -> None:
    if (call := recipe_call(words)) is not None:
        check_recipe_command(*call)
    elif words[:2] == ["python", "-m"]:
        check_module_command(words)
    elif words[0] == "hf-tasks":
        check_hf_tasks_command(words[1:])
    else:
        pytest.fail(f"a command the check does not know how to read: {shlex.join(words)}")


@pytest.fixture
def as_on_a_gpu(monkeypatch):
    # The pages' real runs ask for bf16 on a GPU; parsing them here on a CPU checks every other value.
    monkeypatch.setattr("transformers.training_args.is_torch_bf16_gpu_available", lambda: True)
    monkeypatch.chdir(REPO)


@pytest.mark.parametrize("block", blocks("check: command"), ids=block_id)
def test_command_examples_parse(block, as_on_a_gpu):
    for words in commands(block[2]):
        check_command(words)


def test_the_offline_demo_commands_are_run_end_to_end_by_the_recipe_tests():
    # Parsing is all this file does with them; the recipe's own test trains on the same tiny config.
    demos = {(recipe, arguments[arguments.index("--config") + 1]) for _, _, body in blocks("check: command")
             for words in commands(body) if (call := recipe_call(words)) is not None
             for recipe, arguments in [call] if "--config" in arguments
             and arguments[arguments.index("--config") + 1].endswith("/tiny.yaml")}
    assert {recipe for recipe, _ in demos} >= {name for name in registry.recipe_names() if registry.load(name).trains}
    recipe_tests = {path.name: path.read_text(encoding="utf-8") for path in (REPO / "tests").glob("test_*_recipe.py")}
    for recipe, config in demos:
        folder = Path(config).parent.name  # some tests name the config as CONFIGS / "tiny.yaml"
        assert any(config in text or (f'"{folder}"' in text and '"tiny.yaml"' in text)
                   for text in recipe_tests.values()), f"no recipe test runs {config}"


def test_the_readme_commands_parse(as_on_a_gpu):
    # Its set-up block (venv, pip) and the test and docs commands are what CI runs; the rest are recipe commands.
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    checked = [words for body in re.findall(r"^```bash\n(.*?)^```$", readme, re.M | re.S) for words in commands(body)
               if words[0] not in ("pip", "make") and words[:3] != ["python", "-m", "venv"]
               and words[:3] != ["python", "-m", "pytest"]]
    assert len(checked) >= 4
    for words in checked:
        check_command(words)


@pytest.mark.parametrize("block", blocks("check: config"), ids=block_id)
def test_config_examples_name_options_of_their_recipe(block):
    recipe = block[1].split()[-1]
    config = yaml.safe_load(block[2])
    types_, unused = recipe_arguments(recipe)
    options = {action.dest for action in build_parser(*types_)._actions} - set(unused)
    assert set(config) - {"base", "recipe"} <= options
    if "base" in config:
        assert (REPO / config["base"]).is_file()
    if "recipe" in config:
        assert config["recipe"] == f"recipes/{recipe}.py"


@pytest.mark.parametrize("block", blocks("check: doctest"), ids=block_id)
def test_python_examples_print_what_the_page_shows(block):
    test = doctest.DocTestParser().get_doctest(block[2], {}, block[0], block[0], 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


def page_adapter() -> types.ModuleType:
    (block,) = blocks("check: adapter")
    module = types.ModuleType("docs_adapter")
    exec(compile(block[2], block[0], "exec"), module.__dict__)
    return module


def write_lines(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def test_the_adapter_example_loads_checks_and_skips(tmp_path):
    adapter = page_adapter()
    train = write_lines(tmp_path / "train.jsonl", [{"s1": "a cat sits", "s2": "a cat", "gold": 0},
                                                    {"s1": "p", "s2": "q", "gold": 7},
                                                    {"s1": "x", "s2": "y", "gold": 1}])
    with pytest.raises(BadInputError, match=r"train.jsonl: gold 7 is not 0 or 1 \(line 2\)"):
        adapter.load(DataArguments(train_file=str(train)), bad_rows=BadRows(False))
    skipping = BadRows(True)
    data = adapter.load(DataArguments(train_file=str(train)), bad_rows=skipping)
    assert data["train"]["label"] == [0, 1]
    assert data["train"].features["label"].names == ["entailment", "contradiction"]
    assert [row["line"] for row in skipping.skipped] == [2]


@pytest.mark.parametrize("recipe", RECIPE_NAMES)
def test_each_recipe_page_lists_every_option_its_help_shows(recipe):
    page = (DOCS / "recipes" / f"{recipe}.md").read_text(encoding="utf-8")
    assert f"```{{flag-table}} {recipe}\n```" in page
    assert f"```{{config-list}} {recipe}\n```" in page
    types_, unused = recipe_arguments(recipe)
    parser = build_parser(*types_)
    shown = set(re.findall(r"^  (--\w+)(?= |$)", short_help(parser, "", frozenset(unused)), re.M))
    tabled = {flag_row(action)[0] for _, actions in recipe_option_groups(recipe) for action in actions}
    assert shown == tabled and "--config" in tabled
    assert [title for title, _ in recipe_option_groups(recipe)] == [
        title for title, _ in option_groups(parser, frozenset(unused))]


def test_the_bad_inputs_page_has_a_row_for_every_case():
    from tests.test_bad_inputs import CASES

    page = (DOCS / "concepts" / "bad-inputs.md").read_text(encoding="utf-8")
    missing = [case.what for case in CASES.values() if f"| {case.what} (`{case.recipe}`) |" not in page]
    assert not missing, f"run python -m tests.test_bad_inputs and add these rows: {missing}"


def test_the_readme_is_the_short_front_door():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    (test_command,) = re.findall(r"^python -m pytest .*$", readme, re.M)
    assert test_command in (REPO / ".ci" / "run").read_text()
    assert "make -C docs html" in readme
    for page in re.findall(r"\(docs/([\w/-]+)\.md(?:#[\w-]+)?\)", readme):
        assert (DOCS / f"{page}.md").is_file(), f"the README links to docs/{page}.md, which does not exist"
    for recipe in RECIPE_NAMES:
        assert f"(docs/recipes/{recipe}.md)" in readme


def test_the_build_refuses_a_page_that_loads_from_another_host(tmp_path, caplog):
    (tmp_path / "offline.html").write_text('<link rel="stylesheet" href="_static/furo.css"><a href="https://x.org">x</a>')
    (tmp_path / "online.html").write_text('<link rel="stylesheet" href="https://fonts.example.com/inter.css">')
    app = types.SimpleNamespace(outdir=str(tmp_path), builder=types.SimpleNamespace(format="html"))
    refuse_remote_assets(app, None)
    assert [record.getMessage() for record in caplog.records] == [
        'online.html loads <link rel="stylesheet" href="https://fonts.example.com/inter.css from another host; '
        "the site must work offline"]
