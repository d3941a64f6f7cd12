from pathlib import Path

import pytest
from transformers import TrainingArguments

from hf_tasks.args import DataArguments, ModelArguments, parse, resolved_config


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
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
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
