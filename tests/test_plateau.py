"""ReduceLROnPlateau on validation accuracy in a Trainer run, and per-epoch timing records."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from hf_tasks.callbacks import EpochTimingCallback, check_plateau_schedule

ROWS = 16


class TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)

    def forward(self, x, labels=None):
        logits = self.linear(x)
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


class LearningRateAtEpochStart(TrainerCallback):
    def __init__(self):
        self.rates: list[float] = []

    def on_epoch_begin(self, args, state, control, optimizer=None, **kwargs):
        self.rates.append(optimizer.param_groups[0]["lr"])


def plateau_args(tmp_path, **overrides) -> TrainingArguments:
    values = dict(
        output_dir=str(tmp_path),
        learning_rate=1e-2,
        num_train_epochs=4,
        per_device_train_batch_size=5,  # 4 steps per epoch, the last one short
        per_device_eval_batch_size=16,
        eval_strategy="epoch",
        save_strategy="no",
        lr_scheduler_type="reduce_lr_on_plateau",
        lr_scheduler_kwargs={"factor": 0.6, "patience": 0, "min_lr": 3e-3},
        metric_for_best_model="accuracy",
        remove_unused_columns=False,
        use_cpu=True,
        report_to="none",
        logging_strategy="epoch",
        seed=0,
    )
    values.update(overrides)
    return TrainingArguments(**values)


def train_with_accuracies(args: TrainingArguments, accuracies: list[float]):
    """Train as `args` say; the n-th evaluation reports accuracies[n]."""
    check_plateau_schedule(args)
    torch.manual_seed(0)
    rows = [{"x": torch.randn(2), "labels": index % 2} for index in range(ROWS)]
    reported = iter(accuracies)
    rates, timing = LearningRateAtEpochStart(), EpochTimingCallback()
    trainer = Trainer(
        model=TinyClassifier(),
        args=args,
        train_dataset=rows,
        eval_dataset=rows,
        data_collator=lambda batch: {
            "x": torch.stack([row["x"] for row in batch]),
            "labels": torch.tensor([row["labels"] for row in batch]),
        },
        compute_metrics=lambda prediction: {"accuracy": next(reported)},
        callbacks=[rates, timing],
    )
    trainer.train()
    return trainer, rates.rates, timing


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def test_plateau_in_validation_accuracy_cuts_the_rate_down_to_the_floor(tmp_path):
    trainer, rates, _ = train_with_accuracies(plateau_args(tmp_path, num_train_epochs=5), [0.5] * 5)
    assert trainer.args.lr_scheduler_kwargs["mode"] == "max"
    # The first evaluation sets the best; each flat one after it cuts x0.6, down to min_lr.
    assert rates == pytest.approx([1e-2, 1e-2, 6e-3, 3.6e-3, 3e-3])
    logged = [row["learning_rate"] for row in trainer.state.log_history if "learning_rate" in row]
    assert logged[-1] == pytest.approx(3e-3)


def test_rising_accuracy_keeps_the_rate(tmp_path):
    # torch's default mode "min" would cut the rate at every improvement of an accuracy.
    _, rates, _ = train_with_accuracies(plateau_args(tmp_path), [0.3, 0.4, 0.5, 0.6])
    assert rates == pytest.approx([1e-2] * 4)


def test_mode_contradicting_the_metric_fails(tmp_path):
    args = plateau_args(tmp_path, lr_scheduler_kwargs={"mode": "min", "factor": 0.6})
    with pytest.raises(ValueError, match="contradicts"):
        check_plateau_schedule(args)
    loss_args = plateau_args(tmp_path, metric_for_best_model="loss")
    check_plateau_schedule(loss_args)
    assert loss_args.lr_scheduler_kwargs["mode"] == "min"


def test_epoch_timing_records_train_and_eval_time_per_epoch(tmp_path):
    trainer, _, timing = train_with_accuracies(plateau_args(tmp_path, num_train_epochs=2), [0.5, 0.6, 0.6])
    assert [record["epoch"] for record in timing.epochs] == [1.0, 2.0]
    for record in timing.epochs:
        assert record["train_images"] == ROWS  # 4 steps of 5, the last batch short
        assert record["train_seconds"] > 0 and record["train_images_per_second"] > 0
        assert record["eval_seconds"] > 0 and record["eval_images_per_second"] > 0
    assert json.loads((tmp_path / "epoch_times.json").read_text()) == timing.epochs
    logged = [row for row in trainer.state.log_history if "train_images_per_second" in row]
    assert len(logged) == 2
    trainer.evaluate()  # an evaluation after training is not booked to the last epoch
    written = json.loads((tmp_path / "epoch_times.json").read_text())
    assert timing.epochs[-1]["eval_seconds"] == written[-1]["eval_seconds"]
