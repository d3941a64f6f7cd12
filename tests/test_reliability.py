"""Reliability: SIGTERM / Ctrl-C save a checkpoint and stop (hf_tasks.interrupt), resumed runs and
reruns with the same seed reproduce the metrics, and a hub token never reaches the run folder or logs."""

from __future__ import annotations

import json
import logging
import shutil
import signal

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainerCallback, TrainingArguments

import farstail  # recipes/ is on sys.path through conftest
from hf_tasks.args import DataArguments, ModelArguments, parse
from hf_tasks.interrupt import GracefulInterrupt
from hf_tasks.surgery import SurgeryArguments
from hf_tasks.tasks.pairs import PairArguments
from tests.conftest import recipe_args

# --- GracefulInterrupt on a tiny Trainer run ------------------------------------------------------

EXAMPLES, BATCH, EPOCHS = 64, 8, 3  # 8 optimizer steps per epoch, 24 in all


class SyntheticPairs(torch.utils.data.Dataset):
    """Label 1 when token 5 occurs in the sequence: learnable by a tiny BERT in a few steps."""

    def __init__(self, size: int, seed: int):
        generator = torch.Generator().manual_seed(seed)
        self.input_ids = torch.randint(6, 30, (size, 12), generator=generator)
        self.labels = torch.randint(0, 2, (size,), generator=generator)
        self.input_ids[self.labels == 1, torch.randint(1, 12, (1,), generator=generator)] = 5

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"input_ids": self.input_ids[index], "labels": self.labels[index]}


class SignalAtStep(TrainerCallback):
    """Sends `signal_number` to this process `times` times at the end of optimizer step `step`."""

    def __init__(self, signal_number: int, step: int, times: int = 1):
        self.signal_number, self.step, self.times = signal_number, step, times

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            for _ in range(self.times):
                signal.raise_signal(self.signal_number)  # delivered before raise_signal returns


def tiny_trainer(output_dir, callbacks, **overrides) -> Trainer:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=32, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=16, num_labels=2)
    settings = dict(output_dir=str(output_dir), per_device_train_batch_size=BATCH, num_train_epochs=EPOCHS,
                    learning_rate=5e-3, save_strategy="no", eval_strategy="no", logging_strategy="no",
                    use_cpu=True, report_to="none", disable_tqdm=True, seed=7)
    settings.update(overrides)
    return Trainer(model=BertForSequenceClassification(config), args=TrainingArguments(**settings),
                   train_dataset=SyntheticPairs(EXAMPLES, seed=1), eval_dataset=SyntheticPairs(32, seed=2),
                   callbacks=callbacks)


def checkpoints(folder) -> list[str]:
    return sorted(path.name for path in folder.glob("checkpoint-*"))


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_first_signal_saves_a_checkpoint_and_stops_training(tmp_path, signal_number):
    before = signal.getsignal(signal_number)
    interrupt = GracefulInterrupt()
    trainer = tiny_trainer(tmp_path, [SignalAtStep(signal_number, step=3), interrupt])
    output = trainer.train()
    assert trainer.state.global_step == 3 < EXAMPLES // BATCH * EPOCHS
    assert output.global_step == 3
    assert checkpoints(tmp_path) == ["checkpoint-3"]  # save_strategy "no": saved only because of the signal
    saved = tmp_path / "checkpoint-3"
    assert (saved / "model.safetensors").is_file() and (saved / "optimizer.pt").is_file()
    assert json.loads((saved / "trainer_state.json").read_text())["global_step"] == 3
    assert interrupt.stopped_by == signal.Signals(signal_number).name and interrupt.stopped_at_step == 3
    assert signal.getsignal(signal_number) is before  # handlers restored at train end


def test_a_repeat_within_the_grace_period_is_the_same_request(tmp_path):
    """torchrun forwards a Ctrl-C that the terminal also gave each worker: that must not kill the save."""
    interrupt = GracefulInterrupt(repeat_grace_seconds=60)
    trainer = tiny_trainer(tmp_path, [SignalAtStep(signal.SIGINT, step=2, times=2), interrupt])
    trainer.train()
    assert trainer.state.global_step == 2 and checkpoints(tmp_path) == ["checkpoint-2"]


def test_a_later_second_signal_stops_at_once_through_the_previous_handler(tmp_path):
    class Stopped(Exception):
        pass

    def previous_handler(number, frame):
        raise Stopped(number)

    original = signal.signal(signal.SIGTERM, previous_handler)
    try:
        interrupt = GracefulInterrupt(repeat_grace_seconds=0)
        trainer = tiny_trainer(tmp_path, [SignalAtStep(signal.SIGTERM, step=2, times=2), interrupt])
        with pytest.raises(Stopped):
            trainer.train()
        assert checkpoints(tmp_path) == []  # stopped at once, before the step end could save
        assert signal.getsignal(signal.SIGTERM) is previous_handler
    finally:
        signal.signal(signal.SIGTERM, original)


def test_ctrl_c_twice_raises_keyboard_interrupt(tmp_path):
    trainer = tiny_trainer(tmp_path, [SignalAtStep(signal.SIGINT, step=2, times=2),
                                      GracefulInterrupt(repeat_grace_seconds=0)])
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


# Every evaluation halves the learning rate (the threshold makes no loss count as an improvement),
# so a missing or extra evaluation around the interruption changes every later step.
PLATEAU = dict(eval_strategy="epoch", save_strategy="epoch", lr_scheduler_type="reduce_lr_on_plateau",
               metric_for_best_model="loss",
               lr_scheduler_kwargs={"mode": "min", "factor": 0.5, "patience": 0, "threshold": 10.0,
                                    "threshold_mode": "abs"})


@pytest.mark.parametrize("stop_step", [5, 8], ids=["mid-epoch", "last-step-of-epoch"])
def test_resuming_after_a_signal_reaches_the_uninterrupted_result(tmp_path, stop_step):
    straight = tiny_trainer(tmp_path / "straight", [], **PLATEAU)
    straight.train()
    expected = straight.evaluate()

    interrupted = tiny_trainer(tmp_path / "resumed", [SignalAtStep(signal.SIGTERM, stop_step), GracefulInterrupt()],
                               **PLATEAU)
    interrupted.train()
    assert checkpoints(tmp_path / "resumed") == [f"checkpoint-{stop_step}"]
    resumed = tiny_trainer(tmp_path / "resumed", [], **PLATEAU)
    resumed.train(resume_from_checkpoint=str(tmp_path / "resumed" / f"checkpoint-{stop_step}"))
    assert resumed.state.global_step == straight.state.global_step
    evaluations = [entry for entry in resumed.state.log_history if "eval_loss" in entry]
    assert [entry["epoch"] for entry in evaluations] == [1.0, 2.0, 3.0]
    assert resumed.evaluate()["eval_loss"] == pytest.approx(expected["eval_loss"], rel=1e-5)
    for name, weight in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], weight, msg=name)
