"""--help orients: the recipe's docstring and examples, its own options under headings, the common
Trainer options; --help-all has everything; options a recipe ignores are neither offered nor taken. The
commands (compare, fetch, export) answer the same way, and from the help cache the second time."""

import os
import subprocess
import sys

import pytest

from hf_tasks import command, help_cache, registry
from hf_tasks.errors import BadInputError
from tests.conftest import REPO


def recipe_help(name: str, flag: str, capsys, monkeypatch, columns: int = 80) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    with pytest.raises(SystemExit) as exited:
        registry.load(name).parse([flag])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", registry.recipe_names())
def test_help_opens_with_the_recipe_and_two_examples_and_fits_in_150_lines(name, capsys, monkeypatch):
    # Whole descriptions, wrapped: 150 lines on a 160-column terminal (--help-all: 700 and more).
    text = recipe_help(name, "--help", capsys, monkeypatch, columns=160)
    lines = text.splitlines()
    assert len(lines) <= 150, len(lines)
    recipe = registry.load(name)
    assert recipe.doc.strip().splitlines()[0] in lines[1:4]  # right after the usage line
    examples = [line for line in lines if line.lstrip().startswith(("python ", "accelerate launch "))]
    assert len(examples) >= 2
    assert "model options:" in text and "--config FILE.yaml" in text and "--help-all" in text
    assert "--model-name-or-path" not in text and "--no_" not in text  # one spelling per flag
    if recipe.trains:
        assert "training options people change most" in text and "--learning_rate" in text
        assert "--logging_nan_inf_filter" not in text  # behind --help-all


def test_help_groups_options_under_the_class_that_declares_them(capsys, monkeypatch):
    text = recipe_help("cifar10", "--help", capsys, monkeypatch)
    assert text.index("training regime options:") < text.index("  --trainable_modules ")
    assert text.index("image options:") < text.index("  --image_size ") < text.index("image head options:")
    assert text.index("image head options:") < text.index("  --head_hidden_size ") < text.index("CIFAR-10 options:")


@pytest.mark.parametrize("name, default, choices", [("covid_fakenews", "auto", "auto or bigru"),
                                                     ("shemo", "auto", "auto or pooled"),
                                                     ("cifar10", "mlp", "auto or mlp")])
def test_head_help_names_its_choices_first(name, default, choices, capsys, monkeypatch):
    line = next(line for line in recipe_help(name, "--help", capsys, monkeypatch).splitlines() if "  --head " in line)
    assert f"[{default}] {choices}: the" in line


@pytest.mark.parametrize("name", registry.recipe_names())
def test_options_a_recipe_declares_unused_are_not_offered(name, capsys, monkeypatch):
    unused = registry.load(name).unused
    text = recipe_help(name, "--help", capsys, monkeypatch)
    assert [flag for flag in unused if f"--{flag} " in text] == []
    assert "--output_dir " in text  # the help is the recipe's option list, so an absent flag means something


def test_cifar10_offers_skip_bad_rows_for_unreadable_images(capsys, monkeypatch):
    assert "--skip_bad_rows " in recipe_help("cifar10", "--help", capsys, monkeypatch)


def test_help_wraps_whole_descriptions_to_the_terminal_width(capsys, monkeypatch):
    text = recipe_help("farstail", "--help", capsys, monkeypatch)  # COLUMNS=80
    options = text[text.index("model options:"):]  # after the recipe's own docstring
    entries = [line for line in options.splitlines() if line.startswith("  ")]
    assert "…" not in options and max(len(line) for line in entries) <= 80
    keep_layers = options[options.index("  --keep_layers "):].split("\n  --", 1)[0]
    assert "first:9" in keep_layers  # the syntax a user needs, once cut at ~40 characters
    wide = recipe_help("farstail", "--help", capsys, monkeypatch, columns=200)
    assert any(line.startswith("  --keep_layers ") and "first:9" in line for line in wide.splitlines())


def test_help_all_lists_every_trainer_option(capsys, monkeypatch):
    text = recipe_help("farstail", "--help-all", capsys, monkeypatch)
    assert "--logging_nan_inf_filter" in text and "--prune_schedule" in text
    assert text.count("\n") > 400


def test_a_value_for_an_option_the_recipe_ignores_is_refused_naming_it():
    parsquad = registry.load("parsquad")
    with pytest.raises(BadInputError, match="--data_dir my_images: this recipe does not use it"):
        parsquad.parse(["--config", "recipes/configs/parsquad/tiny.yaml", "--data_dir", "my_images", "--use_cpu",
                        "true"])
    # A run folder's config.yaml lists the option unset; that is no use of it.
    parsquad.parse(["--config", "recipes/configs/parsquad/tiny.yaml", "--use_cpu", "true"])


def test_the_recipe_script_answers_help_with_status_0():
    env = {**os.environ, "COLUMNS": "100", "OMP_NUM_THREADS": "1"}
    finished = subprocess.run([sys.executable, "recipes/parsquad.py", "--help"], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0 and "usage: parsquad.py [--config FILE.yaml]" in finished.stdout
    assert "question answering options:" in finished.stdout and finished.stderr == ""


# Each command's module, the heading of its options and one option as its --help shows it.
COMMANDS = {"compare": ("hf_tasks.study.compare", "compare options:", "  --split test|eval "),
            "fetch": ("hf_tasks.data.fetch", "fetch options:", "  --from_files FILE [FILE ...] "),
            "export": ("hf_tasks.export", "export options:", "  --quantize int8 ")}


@pytest.mark.parametrize("name", COMMANDS)
def test_a_commands_help_is_grouped_and_the_second_one_comes_from_the_cache(name, tmp_path, monkeypatch, capsys):
    _, heading, option = COMMANDS[name]
    monkeypatch.setenv("HF_TASKS_CACHE", str(tmp_path))
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # hf-tasks names the command in sys.argv[0]
    monkeypatch.setattr(help_cache, "_named_source", None)
    with pytest.raises(SystemExit) as exited:
        command.main([name, "--help"])
    text = capsys.readouterr().out
    assert exited.value.code == 0 and text.startswith(f"usage: hf-tasks {name} ")
    assert text.index(heading) < text.index(option) < text.index("this command:") < text.index("  --config FILE.yaml")
    (cached,) = (tmp_path / "help").glob("*.txt")
    cached.write_text("the cached text")
    monkeypatch.setattr(command.importlib, "import_module", lambda module: pytest.fail(f"{module} was imported"))
    with pytest.raises(SystemExit):
        command.main([name, "--help"])
    assert capsys.readouterr().out == "the cached text\n"


@pytest.mark.parametrize("name", COMMANDS)
def test_python_m_answers_a_commands_help_from_the_cache_the_second_time(name, tmp_path):
    module, heading, _ = COMMANDS[name]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_TASKS_CACHE": str(tmp_path / "cache"), "COLUMNS": "100"}

    def answer() -> str:
        finished = subprocess.run([sys.executable, "-m", module, "--help"], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=300)
        assert finished.returncode == 0, finished.stderr[-2000:]
        return finished.stdout

    text = answer()
    assert text.startswith(f"usage: python -m {module} ") and heading in text
    (cached,) = (tmp_path / "cache" / "help").glob("*.txt")
    cached.write_text("the cached text")
    assert answer() == "the cached text\n"  # not a help built anew
    # The same help through hf-tasks names another program: it is kept beside, not in place of, this one.
    finished = subprocess.run([sys.executable, "-m", "hf_tasks.command", name, "--help"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0 and finished.stdout.startswith(f"usage: hf-tasks {name} ")
    assert len(list((tmp_path / "cache" / "help").glob("*.txt"))) == 2 and answer() == "the cached text\n"
