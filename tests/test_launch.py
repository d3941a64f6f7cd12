"""A launch the Trainer would not run as one job stops in `setup`, the first thing every recipe calls."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers.training_args import ParallelMode

from hf_tasks.launch import BASE_PORT, launch_prefix
from hf_tasks.runner import LaunchError, check_launch
from hf_tasks.study.runs import Run, launch_command
from hf_tasks.errors import BadInputError


def trainer_view(mode: ParallelMode) -> SimpleNamespace:
    """What `check_launch` reads of TrainingArguments, without starting a process group."""
    return SimpleNamespace(parallel_mode=mode, device="cpu")


@pytest.mark.parametrize("mode", [ParallelMode.NOT_PARALLEL, ParallelMode.NOT_DISTRIBUTED])
def test_several_launched_processes_the_trainer_would_run_alone_stop(monkeypatch, mode):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(LaunchError) as stopped:
        check_launch(trainer_view(mode))
    message = str(stopped.value)
    assert "\n" not in message
    assert message.startswith("The launcher started 2 processes with an FSDP launch config")
    assert "cpu_ddp.yaml" in message and "--use_cpu true" in message
    assert isinstance(stopped.value, BadInputError)  # shown as a user's error, in one line


def test_a_deepspeed_launch_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(LaunchError, match="started 4 processes with a DeepSpeed launch config"):
        check_launch(trainer_view(ParallelMode.NOT_PARALLEL))


@pytest.mark.parametrize("world_size, mode", [
    (None, ParallelMode.NOT_PARALLEL),  # a plain `python recipe.py`
    ("1", ParallelMode.NOT_PARALLEL),  # a launcher with one process
    ("2", ParallelMode.DISTRIBUTED),  # one distributed job
])
def test_launches_the_trainer_runs_as_one_job_go_on(monkeypatch, world_size, mode):
    for variable in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(variable, raising=False)
    if world_size is not None:
        monkeypatch.setenv("WORLD_SIZE", world_size)
    assert check_launch(trainer_view(mode)) is None


def test_the_study_queue_starts_a_multi_process_run_with_the_one_launch_builder(tmp_path):
    run = Run("farstail-tiny", "farstail-tiny", Path("tiny.yaml"), Path("recipes/farstail.py"), tmp_path / "run", {},
              num_processes=2)
    run.slots = [3, 4]
    on_cpu = launch_command(run, [sys.executable], Path("tiny.yaml"), [], on_devices=False)
    assert on_cpu[:-5] == launch_prefix(2, on_gpus=False, port=BASE_PORT + 3) == [
        sys.executable, "-m", "torch.distributed.run", "--master_port", str(BASE_PORT + 3), "--nproc_per_node", "2"]
    on_gpus = launch_command(run, [sys.executable], Path("tiny.yaml"), [], on_devices=True)
    assert on_gpus[:-5] == [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--main_process_port",
                            str(BASE_PORT + 3), "--num_processes", "2"]
    assert on_gpus[-5:] == ["recipes/farstail.py", "--config", "tiny.yaml", "--output_dir", str(tmp_path / "run")]
