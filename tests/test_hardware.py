"""Precision and loader workers follow the hardware (hf_tasks.args.TrainingArguments): `bf16: auto` (what
the recipes' configs say) trains in bf16 on a GPU that supports it and in fp32 elsewhere, a machine without
a GPU needs no --use_cpu, an explicit bf16 on a CPU that emulates it warns, and loader workers are capped at
the CPUs the process may use."""

from __future__ import annotations

import logging
import shutil

import pytest
from transformers import BertConfig, BertForSequenceClassification

import hf_tasks.args
from hf_tasks.args import TrainingArguments, parse
from hf_tasks.errors import BadInputError
from tests.conftest import REPO


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(hf_tasks.args, "has_accelerator", lambda: False)


def training_args(tmp_path, *flags: str) -> TrainingArguments:
    return parse(TrainingArguments, args=["--output_dir", str(tmp_path / "run"), *flags])[TrainingArguments]


def warnings_of(args: TrainingArguments) -> list[str]:
    return [message for level, message in args.hardware_notes if level == logging.WARNING]


def test_bf16_auto_is_fp32_without_a_gpu_and_needs_no_use_cpu(tmp_path, no_gpu):
    args = training_args(tmp_path, "--bf16", "auto")
    assert (args.bf16, args.use_cpu, args.device.type) == (False, True, "cpu")
    assert args.precision == "fp32 (--bf16 auto on the CPU)"
    assert warnings_of(args) == []


def test_bf16_auto_is_bf16_on_a_gpu_that_supports_it(tmp_path, monkeypatch):
    monkeypatch.setattr(hf_tasks.args, "has_accelerator", lambda: True)
    for module in ("transformers.utils", "transformers.training_args"):
        monkeypatch.setattr(f"{module}.is_torch_bf16_gpu_available", lambda: True)
    args = TrainingArguments(output_dir=str(tmp_path), bf16="auto", use_cpu=False)
    assert args.bf16 is True and args.precision == "bf16 (--bf16 auto on a GPU that supports it)"


@pytest.mark.parametrize("native", [False, True])
def test_an_explicit_bf16_on_a_cpu_warns_once_where_the_cpu_emulates_it(tmp_path, no_gpu, monkeypatch, native):
    monkeypatch.setattr(hf_tasks.args, "cpu_has_native_bf16", lambda: native)
    args = training_args(tmp_path, "--bf16", "true")
    assert args.bf16 is True and args.use_cpu  # the Trainer would have refused bf16 without --use_cpu
    if native:
        assert warnings_of(args) == []
    else:
        [warning] = warnings_of(args)
        assert "without native bf16" in warning and "9x slower" in warning and "--bf16 auto" in warning


def test_a_bf16_value_that_is_no_choice_is_refused_in_one_line(tmp_path, no_gpu):
    with pytest.raises(BadInputError, match="--bf16 maybe: give auto .*, true or false"):
        training_args(tmp_path, "--bf16", "maybe")


def test_loader_workers_are_capped_at_the_cpus_the_process_may_use(tmp_path, no_gpu, monkeypatch):
    monkeypatch.setattr(hf_tasks.args, "usable_cpus", lambda: 2)
    args = training_args(tmp_path, "--dataloader_num_workers", "8")
    assert args.dataloader_num_workers == 2
    assert (logging.INFO, "--dataloader_num_workers 8 capped at 2, the CPUs this process may use.") in \
        args.hardware_notes
    assert training_args(tmp_path, "--dataloader_num_workers", "1").dataloader_num_workers == 1


def test_a_real_config_trains_on_a_cpu_without_flags_in_fp32(tmp_path, no_gpu, caplog):
    """farstail/parsbert.yaml as written (bf16 auto, 1 loader worker per CPU at most), with a local tiny
    model in place of ParsBERT and the sample data: no --use_cpu, no --bf16."""
    import farstail

    model_folder = tmp_path / "model"
    shutil.copytree(REPO / "hf_tasks/samples/tiny-bert-farstail", model_folder)
    config = BertConfig.from_pretrained(model_folder, num_hidden_layers=1, num_labels=3)
    BertForSequenceClassification(config).save_pretrained(model_folder)
    samples = REPO / "hf_tasks/samples/farstail"
    state = parse(*farstail.ARGUMENTS, args=[
        "--config", str(REPO / "recipes/configs/farstail/parsbert.yaml"), "--model_name_or_path", str(model_folder),
        "--train_file", str(samples / "train.tsv"), "--validation_file", str(samples / "validation.tsv"),
        "--test_file", str(samples / "test.tsv"), "--output_dir", str(tmp_path / "run"), "--max_steps", "2",
        "--max_train_samples", "16", "--max_eval_samples", "8", "--max_predict_samples", "8",
        "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false"])
    with caplog.at_level(logging.INFO):
        results = farstail.main(state)
    assert state.training_args.bf16 is False and state.training_args.use_cpu
    assert "Device: cpu, fp32 (--bf16 auto on the CPU)" in caplog.text
    assert results["train_loss"] > 0 and "test_accuracy" in results
