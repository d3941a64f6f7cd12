"""A run says what it is doing: a progress line at a steady wall-clock interval (hf_tasks.run_log.ProgressLog),
and one warning at start when many inputs are truncated at --max_seq_length (hf_tasks.tasks.base)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
import torch
from transformers import TrainerControl, TrainerState

from hf_tasks.args import parse
from hf_tasks.run_log import ProgressLog
from hf_tasks.tasks.base import warn_about_truncation
from tests.conftest import recipe_args


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_progress_line_is_written_each_interval_with_rate_eta_and_the_loss_since_the_last_line(caplog):
    clock = Clock()
    progress = ProgressLog(clock)
    args = SimpleNamespace(per_device_train_batch_size=4, gradient_accumulation_steps=2, world_size=1,
                           progress_interval_seconds=30.0)
    state, control = TrainerState(max_steps=10, global_step=0), TrainerControl()
    progress.on_train_begin(args, state, control)
    caplog.set_level(logging.INFO, logger="hf_tasks")
    for step, (seconds, losses) in enumerate([(10, [0.5, 0.5]), (32, [1.0, 2.0]), (40, [0.25, 0.25])], start=1):
        clock.now = 100.0 + seconds
        for loss in losses:  # two micro-batches per optimizer step, each loss divided by 2 as the Trainer does
            progress.add_loss(torch.tensor(loss))
        state.global_step, state.epoch = step, step / 5
        progress.on_step_end(args, state, control)
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("progress:")]
    # Only the step at 32 s is 30 s past the start; 2 steps of 8 samples in 32 s; 8 steps left at 16 s each.
    assert lines == ["progress: step 2/10 (20%) · epoch 0.40 · 0.5 samples/s · elapsed 32s · ETA 2m 08s · loss 2"]


def test_no_progress_line_with_an_interval_of_zero(caplog):
    clock = Clock()
    progress = ProgressLog(clock)
    args = SimpleNamespace(per_device_train_batch_size=1, gradient_accumulation_steps=1, world_size=1,
                           progress_interval_seconds=0.0)
    state = TrainerState(max_steps=2, global_step=0)
    progress.on_train_begin(args, state, TrainerControl())
    clock.now += 1000
    state.global_step = 1
    with caplog.at_level(logging.INFO, logger="hf_tasks"):
        progress.on_step_end(args, state, TrainerControl())
    assert "progress:" not in caplog.text


@pytest.mark.parametrize("lengths, warned", [([10] * 97 + [50] * 3, False), ([10] * 96 + [50] * 4, True)])
def test_truncation_is_said_once_above_a_few_percent_with_the_length_that_keeps_95_percent(caplog, lengths, warned):
    with caplog.at_level(logging.WARNING):
        warn_about_truncation(lengths, 32, "training pairs")
    assert ("4.0% of training pairs (4 of 100 measured) are longer than --max_seq_length 32 tokens" in caplog.text) \
        == warned
    if warned:
        assert "--max_seq_length 10 would keep 95% of them whole" in caplog.text


def test_a_real_run_logs_progress_lines_and_the_truncation_warning(tmp_path, caplog):
    import farstail

    arguments = recipe_args("recipes/configs/farstail/tiny.yaml", tmp_path / "run", "--max_steps", "3",
                            "--max_train_samples", "48", "--per_device_train_batch_size", "16", "--do_eval", "false",
                            "--do_predict", "false", "--eval_strategy", "no", "--max_seq_length", "8",
                            "--progress_interval_seconds", "0.000001")
    with caplog.at_level(logging.INFO):
        farstail.main(parse(*farstail.ARGUMENTS, args=arguments))
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("progress:")]
    assert [line.split(" · ")[0] for line in lines] == [f"progress: step {step}/3 ({step / 3:.0%})"
                                                       for step in (1, 2, 3)]
    assert all("samples/s" in line and "ETA" in line and " · loss " in line for line in lines), lines
    [warning] = [record.getMessage() for record in caplog.records
                 if "--max_seq_length 8 tokens" in record.getMessage()]
    assert "of training pairs" in warning and "would keep 95% of them whole" in warning
