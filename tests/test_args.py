import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import TrainingArguments

from hf_tasks.args import parse
from hf_tasks.options import DataArguments, ModelArguments
from hf_tasks.run_state import resolved_config
from hf_tasks.errors import BadInputError
from tests.conftest import REPO


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_yaml_gives_defaults_and_the_command_line_overrides(tmp_path):
    config = write_config(tmp_path, "model_name_or_path: org/model\nlearning_rate: 0.001\nmax_seq_length: 256\n"
                                    f"output_dir: {tmp_path}/out\n")
    model_args, data_args, training_args = parse(
        ModelArguments, DataArguments, TrainingArguments,
        args=["--config", str(config), "--learning_rate", "0.5", "--use_cpu", "true"],
    )
    assert model_args.model_name_or_path == "org/model"
    assert data_args.max_seq_length == 256
    assert training_args.learning_rate == 0.5
    assert training_args.output_dir == f"{tmp_path}/out"


def test_unknown_yaml_key_names_the_file_and_key(tmp_path):
    config = write_config(tmp_path, "model_name_or_path: org/model\nlearnig_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"config.yaml.*learnig_rate"):
        parse(ModelArguments, DataArguments, TrainingArguments, args=["--config", str(config)])


def test_missing_config_file_is_reported(tmp_path):
    with pytest.raises(BadInputError, match="nope.yaml"):
        parse(ModelArguments, DataArguments, args=["--config", str(tmp_path / "nope.yaml")])


def test_a_model_or_a_config_is_required():
    with pytest.raises(ValueError, match="model_name_or_path"):
        parse(ModelArguments, DataArguments, args=[])


def test_resolved_config_drops_secrets(tmp_path):
    training_args = TrainingArguments(output_dir=str(tmp_path), hub_token="hf_secret_value", use_cpu=True)
    resolved = resolved_config(ModelArguments(model_name_or_path="x"), training_args)
    assert "hf_secret_value" not in str(resolved)
    assert resolved["model_name_or_path"] == "x"


def test_resolved_config_reruns_in_a_fresh_folder_after_a_resumed_run(tmp_path):
    training_args = TrainingArguments(output_dir=str(tmp_path), resume_from_checkpoint="latest", use_cpu=True)
    resolved = resolved_config(ModelArguments(model_name_or_path="x"), training_args)
    assert "resume_from_checkpoint" not in resolved
    assert resolved["output_dir"] == str(tmp_path)


def run_recipe_command(*arguments: str, debug: bool = False) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HF_TASKS_DEBUG", None)
    return subprocess.run([sys.executable, "recipes/farstail.py", *arguments, *(["--debug"] if debug else [])],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_a_yaml_syntax_error_is_one_line_naming_the_file_and_line_with_status_2(tmp_path):
    config = write_config(tmp_path, "config_name: hf_tasks/samples/tiny-bert-farstail\nlearning_rate: [1e-3\n")
    finished = run_recipe_command("--config", str(config), "--output_dir", str(tmp_path / "run"))
    assert finished.returncode == 2
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in finished.stderr, finished.stderr
    assert lines[0].startswith(f"error: --config {config}:3:") and "not valid YAML" in lines[0]


def test_an_output_dir_holding_files_stops_in_one_line_and_debug_shows_the_traceback(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    arguments = ("--config", "recipes/configs/farstail/tiny.yaml", "--output_dir", str(tmp_path), "--use_cpu", "true")
    finished = run_recipe_command(*arguments)
    assert finished.returncode == 2 and finished.stderr.count("\n") == 1, finished.stderr
    assert "notes.txt" in finished.stderr and "--overwrite_output_dir" in finished.stderr
    debugged = run_recipe_command(*arguments, debug=True)
    assert debugged.returncode != 0 and "Traceback" in debugged.stderr and "BadInputError" in debugged.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


@pytest.mark.parametrize("value", ["0", "-5"])
def test_a_sample_limit_below_one_is_refused_naming_the_flag(value):
    with pytest.raises(BadInputError, match=f"--max_train_samples {value}: give a whole number of at least 1"):
        parse(ModelArguments, DataArguments, args=["--config_name", "bert-base-uncased", "--max_train_samples", value])


def test_a_missing_model_folder_is_named_as_a_missing_folder(tmp_path):
    missing = str(tmp_path / "runs" / "my-model")
    with pytest.raises(BadInputError, match=f"--model_name_or_path {missing}: no such folder"):
        parse(ModelArguments, args=["--model_name_or_path", missing])
    parse(ModelArguments, args=["--model_name_or_path", "HooshvareLab/bert-fa-base-uncased"])  # a hub id stays
