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

from hf_tasks.args import parse
from hf_tasks.interrupt import GracefulInterrupt
from tests.conftest import recipe_args, wandb_run_log  # first: puts recipes/ on sys.path (also when run by torchrun -m)

import farstail  # noqa: E402

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


# --- Recipe runs: same seed, resume, secrets --------------------------------------------------------

QUICK = ["--max_train_samples", "160", "--max_eval_samples", "64", "--max_predict_samples", "64",
         "--num_train_epochs", "2", "--per_device_train_batch_size", "16", "--learning_rate", "0.002",
         "--eval_strategy", "epoch", "--save_strategy", "epoch", "--save_total_limit", "5", "--logging_steps", "2"]


def run_farstail(output_dir, *overrides):
    arguments = parse(*farstail.ARGUMENTS,
                      args=recipe_args("recipes/configs/farstail/tiny.yaml", output_dir, *QUICK, *overrides))
    return farstail.main(arguments)


def scores(results: dict) -> dict:
    return {key: value for key, value in results.items()
            if key.startswith(("eval_", "test_")) and not key.endswith(("_runtime", "_per_second"))}


def logged_losses(output_dir) -> dict[int, float]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    return {entry["step"]: entry["loss"] for entry in history if "loss" in entry}


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("farstail-straight")
    return output_dir, run_farstail(output_dir)


def test_two_runs_with_the_same_seed_give_identical_metrics(straight_run, tmp_path):
    _, first = straight_run
    again = run_farstail(tmp_path / "again")
    assert {"eval_loss", "eval_accuracy", "test_accuracy", "test_macro_f1"} <= set(scores(first))
    assert scores(again) == scores(first)
    assert again["train_loss"] == first["train_loss"]
    other_seed = run_farstail(tmp_path / "other-seed", "--seed", "3")
    assert other_seed["eval_loss"] != first["eval_loss"]  # the comparison above can tell runs apart


def test_resuming_from_an_intermediate_checkpoint_reaches_the_uninterrupted_result(straight_run, tmp_path):
    straight_dir, straight = straight_run
    saved = sorted(straight_dir.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    assert len(saved) == 2, saved  # one per epoch
    shutil.copytree(saved[0], tmp_path / saved[0].name)
    first_epoch_weights = tmp_path / saved[0].name / "model.safetensors"
    copied_at = first_epoch_weights.stat().st_mtime_ns
    resumed = run_farstail(tmp_path, "--resume_from_checkpoint", "latest")
    assert first_epoch_weights.stat().st_mtime_ns == copied_at  # epoch 1 was not trained (and saved) again
    # Step by step training losses (train_loss itself only averages the steps this process ran).
    after_resume = {step: loss for step, loss in logged_losses(tmp_path).items() if step > int(saved[0].name[11:])}
    assert after_resume and after_resume == pytest.approx(
        {step: logged_losses(straight_dir)[step] for step in after_resume}, rel=1e-5)
    for key, value in scores(straight).items():
        assert resumed[key] == pytest.approx(value, rel=1e-4), key


SECRET = "hf_FAKESECRET123"


def test_hub_token_never_reaches_the_run_folder_or_the_logs(tmp_path, capsys, caplog):
    output_dir = tmp_path / "run"
    password = "hunter2URLPASSWORD"
    with caplog.at_level(logging.DEBUG):
        run_farstail(output_dir, "--hub_token", SECRET, "--num_train_epochs", "1", "--report_to", "none",
                     "--run_name", f"https://me:{password}@tracker.example/farstail")
    files = [path for path in output_dir.rglob("*") if path.is_file()]
    assert {"results.json", "config.yaml", "README.md", "training_args.bin"} <= {path.name for path in files}
    leaking = [str(path.relative_to(output_dir)) for path in files if SECRET.encode() in path.read_bytes()]
    assert leaking == []
    # A URL's password in any other argument is hidden in what the runner writes (the Trainer's own pickle
    # of its arguments, training_args.bin, keeps the value as given).
    assert "https://me:***@tracker.example/farstail" in (output_dir / "config.yaml").read_text(encoding="utf-8")
    for written in ("config.yaml", "README.md", "results.json"):
        assert password not in (output_dir / written).read_text(encoding="utf-8"), written
    captured = capsys.readouterr()
    assert SECRET not in captured.out and SECRET not in captured.err
    assert SECRET not in caplog.text


def test_wandb_key_never_reaches_the_run_folder_the_wandb_files_or_the_logs(tmp_path, monkeypatch, capsys, caplog):
    pytest.importorskip("wandb")
    key = "0123456789abcdef0123FAKEWANDBKEY456789ab"
    monkeypatch.setenv("WANDB_API_KEY", key)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    with caplog.at_level(logging.DEBUG):
        run_farstail(tmp_path / "run", "--num_train_epochs", "1", "--report_to", "wandb")
    assert b"learning_rate" in wandb_run_log(tmp_path)  # the scan below reads what wandb recorded
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert [str(path.relative_to(tmp_path)) for path in files if key.encode() in path.read_bytes()] == []
    captured = capsys.readouterr()
    assert key not in captured.out + captured.err + caplog.text
