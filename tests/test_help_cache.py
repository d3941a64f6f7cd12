"""`--help` from the cache: the first help of a recipe stores its text, the next prints it before any heavy
import, and a change to the recipe, the hf_tasks code or a package version builds it anew. (The speed is
measured by tests/benchmarks/bench_help.py, not here.)"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from hf_tasks import help_cache, registry
from tests.conftest import REPO


@pytest.fixture
def running_farstail(monkeypatch, tmp_path):
    """As if `python recipes/farstail.py` were running, with a private help cache."""
    monkeypatch.setenv(help_cache.CACHE_VARIABLE, str(tmp_path / "cache"))
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__file__=str(REPO / "recipes/farstail.py")))
    monkeypatch.setattr(help_cache, "_named_source", None)
    return REPO / "recipes/farstail.py"


def test_the_first_help_is_stored_and_the_next_one_printed_from_the_cache(running_farstail, capsys):
    farstail = registry.load("farstail")
    capsys.readouterr()  # what importing it printed
    with pytest.raises(SystemExit) as built:
        farstail.parse(["--help"])
    assert built.value.code == 0
    text = capsys.readouterr().out
    assert "FarsTail data options" in text and "--keep_layers" in text
    cached = help_cache.cache_path(running_farstail)
    assert cached.read_text(encoding="utf-8") + "\n" == text
    cached.write_text("the cached text", encoding="utf-8")  # so the next answer must come from the cache
    with pytest.raises(SystemExit) as answered:
        help_cache.print_cached(["--config", "x.yaml", "-h"])
    assert answered.value.code == 0 and capsys.readouterr().out == "the cached text\n"


def test_help_all_is_cached_apart_from_help(running_farstail, capsys):
    farstail = registry.load("farstail")
    capsys.readouterr()  # what importing it printed
    with pytest.raises(SystemExit):
        farstail.parse(["--help-all"])
    text = capsys.readouterr().out
    assert "--logging_nan_inf_filter" in text
    assert help_cache.cache_path(running_farstail, whole=True).read_text(encoding="utf-8") + "\n" == text
    assert not help_cache.cache_path(running_farstail).exists()
    with pytest.raises(SystemExit):
        help_cache.print_cached(["--help-all"])
    assert capsys.readouterr().out == text


def test_the_text_is_kept_per_terminal_width(running_farstail, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    narrow = help_cache.cache_path(running_farstail)
    monkeypatch.setenv("COLUMNS", "200")
    assert help_cache.cache_path(running_farstail) != narrow


def test_hf_tasks_names_the_file_whose_help_is_cached(running_farstail, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "__main__", types.SimpleNamespace(__file__="/usr/bin/hf-tasks"))
    help_cache.answer_from_cache(running_farstail, ["--help"])  # nothing stored yet: returns
    help_cache.store("farstail's help", ["--help"])
    with pytest.raises(SystemExit):
        help_cache.answer_from_cache(running_farstail, ["--help"])
    assert capsys.readouterr().out == "farstail's help\n"


def test_nothing_is_printed_without_a_help_flag_or_a_cached_text(running_farstail, capsys):
    help_cache.print_cached(["--config", "x.yaml"])
    help_cache.print_cached(["--help"])  # nothing stored yet
    help_cache.print_cached(["--help-all"])
    assert capsys.readouterr().out == ""


def test_a_changed_recipe_package_version_or_hf_tasks_source_changes_the_key(tmp_path, monkeypatch):
    recipe = tmp_path / "recipe.py"
    recipe.write_text("print('v1')\n")
    package = tmp_path / "hf_tasks"
    package.mkdir()
    (package / "args.py").write_text("A = 1\n")
    monkeypatch.setattr(help_cache, "PACKAGE_ROOT", package)
    first = help_cache.cache_path(recipe)
    assert help_cache.cache_path(recipe) == first
    recipe.write_text("print('v2')\n")
    second = help_cache.cache_path(recipe)
    (package / "args.py").write_text("A = 2\n")
    third = help_cache.cache_path(recipe)
    monkeypatch.setattr(help_cache, "_version", lambda package: "99.0")
    fourth = help_cache.cache_path(recipe)
    assert len({first, second, third, fourth}) == 4
    assert all(path.name.startswith("recipe-") for path in (first, second, third, fourth))


def test_a_new_text_replaces_the_recipes_older_ones_of_the_same_program(running_farstail, monkeypatch):
    folder = help_cache.cache_folder()
    folder.mkdir(parents=True)
    this_program = help_cache.cache_path(running_farstail).name.rsplit("-", 1)[0]  # farstail-<program>
    (folder / f"{this_program}-0000old.txt").write_text("old help")
    (folder / "farstail-hf_tasks_run_farstail-0000.txt").write_text("the help hf-tasks run farstail shows")
    (folder / "parsquad-0000.txt").write_text("another recipe's help")
    help_cache.store("new help", ["--help"])
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [help_cache.cache_path(running_farstail).name, "farstail-hf_tasks_run_farstail-0000.txt",
         "parsquad-0000.txt"])
    assert Path(help_cache.cache_path(running_farstail)).read_text() == "new help"


def test_a_module_run_with_dash_m_and_its_file_run_as_a_script_keep_their_own_usage_lines(tmp_path):
    import os
    import subprocess

    env = {**os.environ, help_cache.CACHE_VARIABLE: str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    ways = {"compare.py": [str(REPO / "hf_tasks/study/compare.py")],
            "python -m hf_tasks.study.compare": ["-m", "hf_tasks.study.compare"]}
    for _ in range(2):  # the second round answers from the cache
        for program, command in ways.items():
            shown = subprocess.run([sys.executable, *command, "--help"], cwd=tmp_path, env=env, capture_output=True,
                                   text=True, timeout=120)
            assert shown.returncode == 0 and shown.stdout.startswith(f"usage: {program} RUN_A RUN_B"), shown.stdout
