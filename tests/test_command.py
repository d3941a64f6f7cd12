"""`hf-tasks`: one command over the registry's recipes (list, run, study, compare, fetch, export)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from hf_tasks import command, help_cache, registry
from hf_tasks.errors import BadInputError
from hf_tasks.launch import launch_prefix
from tests.conftest import REPO


@pytest.fixture(autouse=True)
def _own_argv(monkeypatch):
    """hf-tasks names itself in sys.argv[0] (the usage line) and the file whose help is asked for; other
    tests keep theirs."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(help_cache, "_named_source", None)


QUICK = ["--max_steps", "2", "--max_train_samples", "16", "--max_eval_samples", "8", "--do_predict", "false",
         "--eval_strategy", "no", "--save_strategy", "no", "--use_cpu", "true", "--report_to", "none",
         "--disable_tqdm", "true"]


def test_list_names_every_recipe_with_its_configs_one_line_each(tmp_path):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    finished = subprocess.run([sys.executable, "-m", "hf_tasks.command", "list"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert [line.split()[0] for line in lines] == registry.recipe_names()
    farstail = next(line for line in lines if line.startswith("farstail "))
    assert "tiny" in farstail and "parsbert" in farstail and "base" not in farstail.split("configs:")[1]


def test_a_packaged_config_is_found_by_name_and_a_path_stays_a_path(tmp_path):
    tiny = registry.configs_folder("farstail") / "tiny.yaml"
    assert registry.find_config("tiny", recipe="farstail") == tiny
    assert registry.find_config("farstail/tiny") == registry.find_config("farstail/tiny.yaml") == tiny
    mine = tmp_path / "tiny"
    mine.write_text("seed: 1\n")
    assert registry.find_config(str(mine), recipe="farstail") == mine


def test_run_trains_the_recipe_on_a_packaged_config_named_after_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert command.main(["run", "farstail", "--config", "tiny", "--output_dir", "run", *QUICK]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "eval_accuracy" in results


@pytest.mark.parametrize("arguments, message", [
    (["frob"], "frob: no such command; the commands are list, run, study"),
    (["run", "nope"], "no recipe named 'nope'; the recipes are attention, cifar10"),
    (["run", "farstail", "--config", "nope"], "--config nope: no such file, and no packaged config of that name "
                                              "(farstail/freeze12"),
    (["run", "farstail", "--config", "tiny", "--num_processes", "two"], "--num_processes two: give a whole number"),
    (["fetch", "mnist"], "mnist: no such dataset; choose one of pquad, farstail, constraint, shemo, cifar10."),
])
def test_a_mistake_is_one_line_and_status_2(arguments, message, capsys):
    with pytest.raises(SystemExit) as exited:
        command.main(arguments)
    error = capsys.readouterr().err
    assert exited.value.code == 2 and len(error.strip().splitlines()) == 1 and message in error


def test_run_with_several_processes_goes_through_the_one_launch_builder(monkeypatch, capsys):
    launched = []
    monkeypatch.setattr(command.subprocess, "run", lambda line: launched.append(line) or subprocess.CompletedProcess(
        line, 0))
    token = "hf_" + "x" * 30
    assert command.main(["run", "farstail", "--num_processes", "2", "--config", "farstail/tiny", "--seed", "3",
                         "--hub_token", token]) == 0
    tiny = str(registry.configs_folder("farstail") / "tiny.yaml")
    assert launched == [[*launch_prefix(2, on_gpus=torch.cuda.is_available()), str(registry.recipe_path("farstail")),
                         "--config", tiny, "--seed", "3", "--hub_token", token]]
    printed = capsys.readouterr().out
    assert "--hub_token" in printed and token not in printed  # the launch line shown hides the token


def test_a_study_takes_packaged_configs_by_name(tmp_path):
    from hf_tasks.study import parse_study_args

    study = parse_study_args(["farstail/tiny", "farstail/keep9", "--output_dir", str(tmp_path)])
    assert study.configs == [registry.configs_folder("farstail") / f"{name}.yaml" for name in ("tiny", "keep9")]


@pytest.mark.parametrize("arguments, message", [
    (["run", "farstail", "--config", "tiny", "--learning_rat", "0.1"],
     "unknown option(s): --learning_rat 0.1 (did you mean --learning_rate? flags are not abbreviated); "
     "hf-tasks run farstail --help lists the options."),
    (["run", "farstail", "--config", "tiny", "--max_train_samples", "x"], "--max_train_samples x: expected a whole "
                                                                         "number; hf-tasks run farstail --help"),
    (["run", "farstail", "--config", "tiny", "--do_train", "maybe"], "--do_train maybe: expected true or false"),
    (["fetch", "pquad", "--to"], "--to expects one value(s); hf-tasks fetch --help lists the options."),
    (["fetch", "pquad", "--fro", "x"], "--fro x (did you mean --from or --from_files? flags are not "
                                       "abbreviated); hf-tasks fetch --help lists the options."),
    # each flag named once, as --help spells it, though HfArgumentParser also takes --learning-rate
    (["run", "farstail", "--config", "tiny", "--learn", "0.1"], "--learn 0.1 (did you mean --learning_rate? flags "
                                                              "are not abbreviated)"),
    (["fetch", "--to", "data", "pquad"], "give NAME before the options (got none); hf-tasks fetch --help"),
    (["export", "runs/x", "--quantize", "int4"], "--quantize int4: expected one of 'int8'; hf-tasks export --help"),
    (["export", "runs/x", "--format", "tflite"], "--format tflite: expected one of 'onnx'; hf-tasks export --help"),
    (["export", "runs/x", "--over"], "--over (did you mean --overwrite? flags are not abbreviated); hf-tasks export"),
    (["compare", "runs/a"], "give RUN_A RUN_B before the options (got runs/a); hf-tasks compare --help lists the"),
    (["compare", "runs/a", "runs/b", "--split", "train"], "--split train: expected one of 'test', 'eval'; hf-tasks "
                                                          "compare --help"),
    (["compare", "runs/a", "runs/b", "--metr", "f1"], "--metr f1 (did you mean --metric? flags are not abbreviated); "
                                                      "hf-tasks compare --help"),
    (["compare", "runs/a", "runs/b", "--latex", "maybe"], "--latex maybe: expected true or false; hf-tasks compare"),
])
def test_every_argparse_error_is_one_line_naming_the_flag_and_help(arguments, message, capsys):
    with pytest.raises(SystemExit) as exited:
        command.main(arguments)
    error = capsys.readouterr().err
    assert exited.value.code == 2 and len(error.strip().splitlines()) == 1, error
    assert message in error and "--help" in error


@pytest.mark.parametrize("module, arguments, message", [
    ("hf_tasks.samples.images", ["tree", "--size", "x"], "--size x: expected a whole number"),
    ("hf_tasks.text.tweets", ["--text", "hi", "--bogus"], "unknown option(s): --bogus"),
])
def test_the_helper_modules_name_themselves_as_run_in_their_one_line_errors(module, arguments, message, tmp_path):
    finished = subprocess.run([sys.executable, "-m", module, *arguments], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert finished.returncode == 2 and finished.stderr.count("\n") == 1, finished.stderr
    assert f"{message}; python -m {module} --help lists the options." in finished.stderr


def test_study_help_is_grouped_and_its_options_are_parsed_like_a_recipes(tmp_path, monkeypatch, capsys):
    from hf_tasks.study import parse_study_args

    monkeypatch.setenv("HF_TASKS_CACHE", str(tmp_path / "cache"))
    with pytest.raises(SystemExit) as exited:
        command.main(["study", "--help"])
    text = capsys.readouterr().out
    assert exited.value.code == 0 and text.startswith("usage: hf-tasks study CONFIGS... --output_dir DIR")
    assert text.index("study options:") < text.index("  --seeds ") < text.index("hyperparameter search options:")
    assert text.index("Slurm options:") < text.index("  --slurm_partition ")
    # --seed is the recipe's flag, forwarded; never an abbreviation of --seeds.
    study = parse_study_args(["farstail/tiny", "--output_dir", str(tmp_path), "--seed", "3", "--parallel", "2"])
    assert study.forwarded == ["--seed", "3"] and study.parallel == 2 and study.seeds is None
    with pytest.raises(BadInputError, match="--parallel two: expected a whole number; .* --help lists the options"):
        parse_study_args(["farstail/tiny", "--output_dir", str(tmp_path), "--parallel", "two"])


def test_python_m_hf_tasks_study_help_is_grouped_and_the_second_one_cached(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_TASKS_CACHE": str(tmp_path / "cache"), "COLUMNS": "100"}
    answers = [subprocess.run([sys.executable, "-m", "hf_tasks.study", "--help"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert [answer.returncode for answer in answers] == [0, 0], answers[0].stderr[-2000:]
    assert "study options:" in answers[0].stdout and answers[1].stdout == answers[0].stdout
    assert list((tmp_path / "cache" / "help").glob("__main__-*.txt"))  # the second answer's source
