"""Two CPU processes (torchrun, gloo) against one: the same evaluation of a saved model (metrics,
eval loss, every validation row scored once), the same training steps with the batch split across
processes, and a signal to one process stopping all of them at the same step with a checkpoint.

Each recipe trains a tiny model once in-process; its run folder is then evaluated in-process and by
`python -m torch.distributed.run --nproc_per_node 2 recipes/<recipe>.py ... --use_cpu true`, and
FarsTail's also by `accelerate launch` with the CPU preset. A launch the Trainer would not run as one
job (an FSDP preset on a machine without GPUs) stops before it writes anything.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from transformers import (
    AlbertConfig,
    AlbertForQuestionAnswering,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForQuestionAnswering,
)

from hf_tasks import registry
from hf_tasks.config_files import config_values
from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification
from hf_tasks.data.tables import read_table
from tests.conftest import (  # first: puts recipes/ on sys.path (also when run by torchrun -m)
    REPO,
    TWO_PROCESS_TIMEOUT,
    launch_two_processes,
    recipe_args,
)

pytestmark = pytest.mark.distributed


@dataclass
class Recipe:
    name: str
    train: tuple[str, ...]  # a few quick steps that leave a model with more than one predicted class
    evaluate: tuple[str, ...]  # how the recipe loads its own run folder back
    row_id: str  # the column of eval_predictions.csv that names the example

    def arguments(self, output_dir: Path, *overrides: str) -> list[str]:
        return recipe_args(f"recipes/configs/{self.name}/tiny.yaml", output_dir, *overrides)

    def run_in_process(self, output_dir: Path, *overrides: str) -> dict:
        recipe = registry.load(self.name)
        return recipe.main(recipe.parse(self.arguments(output_dir, *overrides)))

    @property
    def data_dir(self) -> bool:
        """The recipe writes synthetic data into --data_dir."""
        return registry.load(self.name).writes_data_dir


NO_EXTRAS = ("--do_predict", "false", "--save_strategy", "no")
RECIPES = {
    recipe.name: recipe
    for recipe in (
        Recipe("farstail",
               train=("--max_train_samples", "256", "--num_train_epochs", "4", "--learning_rate", "0.002",
                      "--per_device_train_batch_size", "16", "--eval_strategy", "no", *NO_EXTRAS),
               evaluate=(), row_id="line"),
        Recipe("covid_fakenews",
               train=("--max_train_samples", "256", "--num_train_epochs", "3", "--eval_strategy", "no", *NO_EXTRAS),
               evaluate=(), row_id="id"),
        Recipe("cifar10",
               # The plateau schedule needs evaluations; the last one is of the saved model.
               train=("--max_train_samples", "256", "--num_train_epochs", "3", "--eval_strategy", "epoch",
                      "--load_best_model_at_end", "false", *NO_EXTRAS),
               evaluate=("--pretrained_backbone", "true"), row_id="image_id"),
        Recipe("shemo",
               train=("--num_train_epochs", "3", "--eval_strategy", "no", *NO_EXTRAS),
               evaluate=("--head", "auto"), row_id="file"),
    )
}


def validation_rows(recipe: Recipe, data_dir: Path, single_dir: Path) -> list[str]:
    """The validation examples as the data defines them, independently of the predictions."""
    if recipe.name == "farstail":
        with open(REPO / "hf_tasks/samples/farstail/validation.tsv", encoding="utf-8", newline="") as handle:
            return [str(index) for index, _ in enumerate(csv.DictReader(handle, delimiter="\t"), start=2)]
    if recipe.name == "covid_fakenews":
        return [row.values["id"] for row in read_table(REPO / "hf_tasks/samples/constraint/validation.csv")]
    if recipe.name == "shemo":
        split = json.loads((single_dir / "split.json").read_text())
        return [clip["file"] for clip in split["splits"]["validation"]["files"]]
    return []  # cifar10: a seeded share of the training tree; checked against the one-process rows


def read_predictions(folder: Path) -> list[dict]:
    with open(folder / "eval_predictions.csv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def scored(results: dict) -> dict:
    return {key: value for key, value in results.items()
            if key.startswith("eval_") and not key.endswith(("_runtime", "_per_second", "_preparation_time"))}


@pytest.mark.parametrize("name", list(RECIPES))
def test_two_process_evaluation_equals_one_process(name, tmp_path):
    recipe = RECIPES[name]
    data = ()
    if recipe.data_dir:
        data = ("--data_dir", str(tmp_path / "data"), "--dataset_cache_dir", str(tmp_path / "cache"))
    trained = recipe.run_in_process(tmp_path / "trained", *data, *recipe.train)
    evaluation = ("--model_name_or_path", str(tmp_path / "trained"), *recipe.evaluate, *data,
                  "--do_train", "false", "--do_predict", "false")
    single = recipe.run_in_process(tmp_path / "one", *evaluation)
    # The run folder loaded back: its evaluation is the one the training run ended with.
    assert single["eval_loss"] == pytest.approx(trained["eval_loss"], rel=1e-5)
    assert single["eval_accuracy"] == trained["eval_accuracy"]

    launch_two_processes(str(registry.recipe_path(name)), *recipe.arguments(tmp_path / "two", *evaluation))
    assert_same_evaluation(recipe, tmp_path, single, tmp_path / "one", tmp_path / "two")


def assert_same_evaluation(recipe: Recipe, tmp_path: Path, single: dict, one_dir: Path, two_dir: Path) -> None:
    """The two-process run folder `two_dir` scored every validation row once, as the one-process run did."""
    double = json.loads((two_dir / "results.json").read_text())
    assert set(scored(double)) == set(scored(single))
    for key, value in scored(single).items():
        assert double[key] == pytest.approx(value, rel=1e-4), key

    one, two = read_predictions(one_dir), read_predictions(two_dir)
    ids = [row[recipe.row_id] for row in two]
    assert len(set(ids)) == len(ids), "a validation row was scored twice"
    assert ids == [row[recipe.row_id] for row in one]
    expected = validation_rows(recipe, tmp_path / "data", one_dir)
    if expected:
        assert sorted(ids) == sorted(expected)
    supports = sum(value for key, value in double.items() if key.startswith("eval_support_"))
    assert supports == len(ids)
    assert [row["predicted_label"] for row in two] == [row["predicted_label"] for row in one]
    assert len({row["predicted_label"] for row in one}) > 1, "a constant model would make the comparison weak"


ACCELERATE_LAUNCH = [sys.executable, "-m", "accelerate.commands.launch"]


def accelerate_launch(config_file: Path, log_dir: Path, *arguments: str) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file config_file ...`, one thread per process, bounded like torchrun's tests;
    each process's output is also kept in `log_dir/<run>/attempt_0/<rank>/`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [*ACCELERATE_LAUNCH, "--config_file", str(config_file), "--log_dir", str(log_dir), "--tee", "3"]
    return subprocess.run([*command, *arguments], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=TWO_PROCESS_TIMEOUT)


def rank_logs(log_dir: Path) -> dict[str, str]:
    """stderr of each process an `accelerate_launch` started, by rank."""
    return {path.parent.name: path.read_text() for path in log_dir.rglob("stderr.log")}


def test_cpu_preset_two_process_evaluation_equals_one_process(tmp_path):
    recipe = RECIPES["farstail"]
    recipe.run_in_process(tmp_path / "trained", *recipe.train)
    evaluation = ("--model_name_or_path", str(tmp_path / "trained"), "--do_train", "false", "--do_predict", "false")
    single = recipe.run_in_process(tmp_path / "one", *evaluation)
    finished = accelerate_launch(REPO / "recipes/accelerate/cpu_ddp.yaml", tmp_path / "logs",
                                 str(REPO / "recipes/farstail.py"), *recipe.arguments(tmp_path / "two", *evaluation))
    assert finished.returncode == 0, (finished.stdout[-3000:], finished.stderr[-3000:])
    assert sorted(rank_logs(tmp_path / "logs")) == ["0", "1"]
    assert_same_evaluation(recipe, tmp_path, single, tmp_path / "one", tmp_path / "two")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the combination is an FSDP preset on a machine without GPUs")
def test_fsdp_preset_on_cpu_runs_as_one_job_because_the_cpu_is_used_where_there_is_no_gpu(tmp_path):
    """The FSDP preset set to 2 processes and `use_cpu: true`, as a user without GPUs would try it. A recipe told
    --use_cpu false once got a Trainer that ran each process on its own (and was stopped, `check_launch`); the
    arguments now follow the hardware (no GPU: the CPU), so the two processes train as one job."""
    preset = yaml.safe_load((REPO / "recipes/accelerate/fsdp.yaml").read_text(encoding="utf-8"))
    preset.update(num_processes=2, use_cpu=True)
    config = tmp_path / "fsdp_cpu.yaml"
    config.write_text(yaml.safe_dump(preset), encoding="utf-8")
    output = tmp_path / "run"
    finished = accelerate_launch(config, tmp_path / "logs", str(REPO / "recipes/farstail.py"),
                                 *RECIPES["farstail"].arguments(output, "--use_cpu", "false"))
    assert finished.returncode == 0, (finished.stdout[-3000:], finished.stderr[-3000:])
    logs = rank_logs(tmp_path / "logs")
    assert not any("Traceback" in log or "error: The launcher" in log for log in logs.values())
    assert json.loads((output / "results.json").read_text(encoding="utf-8"))["eval_accuracy"] is not None


def test_two_processes_with_half_batches_train_like_one_process(tmp_path):
    """2 x batch 8 and 1 x batch 16 see the same 16 examples per step, so every logged training loss
    and gradient norm must agree; a loss scaled by the world size (the Trainer's `num_items_in_batch`
    path for models whose forward takes **kwargs) would show as twice the value."""
    model = tmp_path / "no-dropout-bert"
    shutil.copytree(REPO / "hf_tasks/samples/tiny-bert-farstail", model)
    config = BertConfig.from_pretrained(model)
    # Dropout draws differ per process; without it a step depends only on the weights and the batch.
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    config.num_hidden_layers = 2
    config.save_pretrained(model)
    steps = ("--config_name", str(model), "--max_train_samples", "64", "--max_steps", "4", "--logging_steps", "1",
             "--learning_rate", "0.002", "--do_eval", "false", "--eval_strategy", "no", "--do_predict", "false",
             "--save_strategy", "no")
    recipe = RECIPES["farstail"]
    recipe.run_in_process(tmp_path / "one", *steps, "--per_device_train_batch_size", "16")
    launch_two_processes(str(REPO / "recipes/farstail.py"),
           *recipe.arguments(tmp_path / "two", *steps, "--per_device_train_batch_size", "8"))

    def logged(folder: Path) -> list[dict]:
        history = json.loads((folder / "trainer_state.json").read_text())["log_history"]
        return [entry for entry in history if "loss" in entry]

    one, two = logged(tmp_path / "one"), logged(tmp_path / "two")
    assert [entry["step"] for entry in two] == [entry["step"] for entry in one] == [1, 2, 3, 4]
    for first, second in zip(one, two):
        assert second["loss"] == pytest.approx(first["loss"], rel=1e-4), first["step"]
        assert second["grad_norm"] == pytest.approx(first["grad_norm"], rel=1e-4), first["step"]


def test_a_signal_to_one_process_stops_all_at_the_same_step_with_a_checkpoint(tmp_path):
    launch_two_processes("tests.test_distributed", "--interrupt-worker", str(tmp_path), module=True)
    reports = {rank: json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)}
    assert reports[1] == {"global_step": 2, "stopped_by": "SIGTERM"}
    assert reports[0] == {"global_step": 2, "stopped_by": "SIGTERM on another process"}
    state = json.loads((tmp_path / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    assert (tmp_path / "checkpoint-2" / "model.safetensors").is_file()


def _interrupt_worker(output_dir: Path) -> None:
    """One process of the test above: process 1 alone is sent SIGTERM at step 2."""
    import signal

    from hf_tasks.interrupt import GracefulInterrupt
    from tests.test_reliability import SignalAtStep, tiny_trainer

    rank = int(os.environ["RANK"])
    interrupt = GracefulInterrupt()
    callbacks = [SignalAtStep(signal.SIGTERM, step=2)] if rank == 1 else []
    trainer = tiny_trainer(output_dir, [*callbacks, interrupt])
    trainer.train()
    report = {"global_step": trainer.state.global_step, "stopped_by": interrupt.stopped_by}
    (output_dir / f"rank{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__" and sys.argv[1:2] == ["--interrupt-worker"]:
    _interrupt_worker(Path(sys.argv[2]))


def _unused_search_off(config: Path) -> bool:
    return config_values(config).get("ddp_find_unused_parameters") is False


def _tiny(config_class, **options):
    return config_class(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, embedding_size=16, **options)


SPANS = {"start_positions": torch.tensor([1, 3]), "end_positions": torch.tensor([2, 5])}
CLASSES = {"labels": torch.tensor([0, 1])}
MODELS_THAT_USE_EVERY_WEIGHT = {
    "parsquad: ParsBERT": (lambda: BertForQuestionAnswering(_tiny(BertConfig)), SPANS),
    "parsquad: ALBERT-fa": (lambda: AlbertForQuestionAnswering(_tiny(AlbertConfig)), SPANS),
    "parsquad: XLM-R": (lambda: XLMRobertaForQuestionAnswering(_tiny(XLMRobertaConfig)), SPANS),
    "farstail (every surgery), covid_fakenews linear head": (
        lambda: BertForSequenceClassification(_tiny(BertConfig, num_labels=3)), CLASSES),
    "covid_fakenews BiGRU head": (
        lambda: BiGRUForSequenceClassification(BiGRUConfig(encoder=_tiny(BertConfig).to_dict(), num_labels=2,
                                                           gru_hidden_size=8)), CLASSES),
}


def text_recipes() -> list[str]:
    """The recipes that train a text model (their model card says a text task)."""
    return [name for name in registry.recipe_names() if (recipe := registry.load(name)).trains
            and recipe.model_card.task_type in ("question-answering", "text-classification")]


@pytest.mark.parametrize("family", list(MODELS_THAT_USE_EVERY_WEIGHT))
def test_configs_that_skip_the_unused_parameter_search_have_models_that_use_every_weight(family):
    # DDP with find_unused_parameters false waits forever for a gradient that never comes.
    configs = [path for recipe in text_recipes() for path in registry.configs_folder(recipe).glob("*.yaml")]
    assert [path.name for path in configs if not _unused_search_off(path)] == []
    build, labels = MODELS_THAT_USE_EVERY_WEIGHT[family]
    model = build().train()
    inputs = {"input_ids": torch.randint(5, 64, (2, 12)), "attention_mask": torch.ones(2, 12, dtype=torch.long)}
    model(**inputs, **labels).loss.backward()
    assert [name for name, weight in model.named_parameters() if weight.requires_grad and weight.grad is None] == []
