"""The one place that builds a Trainer, trains, evaluates, predicts and writes the run folder.

Every recipe ends with `run(task, model, training_args, ...)`. The run folder then holds the saved
model, `results.json`, `config.yaml`, prediction files and plots from the task, `training_curves.png`
and a model card (`README.md`), and is pushed to the Hub with `--push_to_hub`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import datasets
import transformers
import yaml
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from hf_tasks.args import resolved_config
from hf_tasks.interrupt import GracefulInterrupt
from hf_tasks.plots import plot_training_curves
from hf_tasks.surgery import parameter_counts
from hf_tasks.tasks.base import Task

logger = logging.getLogger("hf_tasks")


def setup(training_args: TrainingArguments) -> None:
    """Logging (info on the main process, warnings elsewhere) and the seed, before any model is built."""
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = logging.INFO if training_args.should_log else logging.WARNING
    logger.setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    set_seed(training_args.seed)
    if training_args.hub_token:
        # The Trainer pickles its arguments into every checkpoint (training_args.bin); the token must
        # not travel with them. huggingface_hub reads it from the environment when pushing.
        os.environ["HF_TOKEN"] = training_args.hub_token
        training_args.hub_token = None


class TaskTrainer(Trainer):
    """A Trainer that scores predictions through the task, so metrics appear wherever eval loss does."""

    def __init__(self, *args, task: Task, **kwargs):
        super().__init__(*args, **kwargs)
        self.task = task
        # The Trainer assumes a model whose forward takes **kwargs normalises its loss by the global
        # `num_items_in_batch`, and then multiplies the loss by the number of processes (and skips the
        # division by gradient-accumulation steps). Task heads here return a plain batch mean, so that
        # would scale train/eval losses and gradients by the world size. Only a model that declares
        # `accepts_loss_kwargs = True` gets that treatment.
        self.model_accepts_loss_kwargs = getattr(
            self.accelerator.unwrap_model(self.model), "accepts_loss_kwargs", False
        ) is True

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):
        output = super().evaluation_loop(
            dataloader, description, prediction_loss_only=False, ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        scores = self.task.score(metric_key_prefix, output.predictions, output.label_ids)
        output.metrics.update({f"{metric_key_prefix}_{name}": value for name, value in scores.items()})
        return output

    def create_model_card(self, **kwargs) -> None:
        """Keep the card `run` wrote (the Trainer's own would overwrite it when pushing)."""
        card = Path(self.args.output_dir) / "README.md"
        if not card.exists():
            super().create_model_card(**kwargs)


class RunConfigToWandb(TrainerCallback):
    """Adds the recipe's own arguments (task, data, model) to the wandb run the Trainer starts."""

    def __init__(self, config: dict[str, Any]):
        self.config = config

    def on_train_begin(self, args, state, control, **kwargs):
        import wandb

        if wandb.run is not None:
            wandb.config.update(self.config, allow_val_change=True)


def resolve_checkpoint(training_args: TrainingArguments) -> str | None:
    """`--resume_from_checkpoint` as a path: `latest`/`true` mean the newest checkpoint in output_dir."""
    requested = training_args.resume_from_checkpoint
    if requested is None or str(requested).lower() in {"false", "no", ""}:
        return None
    if str(requested).lower() in {"true", "latest", "yes"}:
        last = get_last_checkpoint(training_args.output_dir) if Path(training_args.output_dir).is_dir() else None
        if last is None:
            raise FileNotFoundError(
                f"--resume_from_checkpoint {requested}: no checkpoint-* folder in {training_args.output_dir}."
            )
        return last
    if not Path(requested).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {requested}: no such checkpoint folder.")
    return str(requested)


def run(
    task: Task,
    model,
    training_args: TrainingArguments,
    *,
    processing_class=None,
    callbacks: Iterable = (),
    arguments: Iterable = (),
    optimizers=(None, None),
    model_card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train / evaluate / predict as `training_args` asks, write the run folder, return the results."""
    started = time.perf_counter()
    output_dir = Path(training_args.output_dir)
    features = task.features(training_args)
    for flag, split in (("do_train", "train"), ("do_eval", "eval"), ("do_predict", "test")):
        if getattr(training_args, flag) and features.get(split) is None:
            raise ValueError(f"--{flag} needs the {split} split, but the task built none; give the matching data.")
    checkpoint = resolve_checkpoint(training_args) if training_args.do_train else None
    arguments = tuple(arguments)
    callbacks = list(callbacks)
    if "wandb" in (training_args.report_to or []):
        callbacks.append(RunConfigToWandb(resolved_config(*arguments)))
    interrupt = GracefulInterrupt()
    if training_args.do_train:
        callbacks.append(interrupt)

    trainer = TaskTrainer(
        model=model,
        args=training_args,
        train_dataset=features.get("train") if training_args.do_train else None,
        eval_dataset=features.get("eval"),
        data_collator=task.data_collator,
        processing_class=processing_class,
        callbacks=callbacks,
        optimizers=optimizers,
        task=task,
    )
    results: dict[str, Any] = dict(parameter_counts(model))
    logger.info("Parameters: %(trainable_params)s trainable of %(total_params)s", results)

    if training_args.do_train:
        try:
            train_output = trainer.train(resume_from_checkpoint=checkpoint)
        finally:
            interrupt.restore()  # train() may raise before on_train_end puts the signal handlers back
        if interrupt.stopped_by is not None:
            logger.warning("Stopped by %s at step %s with a checkpoint saved; continue with "
                           "--resume_from_checkpoint latest.", interrupt.stopped_by, interrupt.stopped_at_step)
            return {**results, **train_output.metrics, "interrupted_at_step": interrupt.stopped_at_step}
        trainer.save_model()
        trainer.save_state()
        results.update(train_output.metrics)
        results.update(parameter_counts(trainer.model))  # surgery during training (pruning) may shrink it
    if training_args.do_eval:
        results.update(trainer.evaluate())
        if training_args.do_train and training_args.should_save:
            # Evaluation may tune a setting the model keeps in its config (QA's no-answer threshold).
            trainer.accelerator.unwrap_model(trainer.model).config.save_pretrained(output_dir)
    if training_args.do_predict:
        results.update(trainer.predict(features["test"], metric_key_prefix="test").metrics)
    results["wall_time_seconds"] = round(time.perf_counter() - started, 2)

    if trainer.is_world_process_zero():
        files = _write_run_folder(trainer, task, results, arguments, model_card or {})
        _log_to_wandb(training_args, results, files)
        print(_summary(task, results, output_dir, files))
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="hf_tasks run")
    return results


def _write_run_folder(trainer: Trainer, task: Task, results: dict, arguments: Iterable, card: dict) -> list[Path]:
    output_dir = Path(trainer.args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    weights = list(output_dir.glob("*.safetensors"))
    if weights:
        results["model_size_mb"] = round(sum(path.stat().st_size for path in weights) / 2**20, 3)
    files: list[Path] = []
    for prefix in ("eval", "test"):
        if any(key.startswith(f"{prefix}_") for key in results):
            files += task.write_predictions(prefix, output_dir)
    skipped = getattr(task, "skipped_rows", None)
    if skipped:
        path = output_dir / "skipped_rows.json"
        path.write_text(json.dumps(skipped, ensure_ascii=False, indent=2), encoding="utf-8")
        files.append(path)
        results["skipped_rows"] = len(skipped)
    curves = plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png")
    if curves is not None:
        files.append(curves)
    (output_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")
    config = resolved_config(*arguments)
    (output_dir / "config.yaml").write_text(
        yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    location = trainer.args.hub_model_id if trainer.args.push_to_hub and trainer.args.hub_model_id else str(output_dir)
    usage = loading_code(trainer.accelerator.unwrap_model(trainer.model), location)
    card_text = _model_card(config, results, card, usage, task.model_card_notes())
    (output_dir / "README.md").write_text(card_text, encoding="utf-8")
    return files


def loading_code(model, location: str) -> str:
    """Python that loads the saved model: the concrete class (custom heads live in hf_tasks, and
    importing their module registers them), through `hf_tasks.surgery.from_pretrained` when heads
    were pruned, since plain `from_pretrained` cannot rebuild projections of per-layer sizes."""
    model_class = type(model)
    exported = getattr(transformers, model_class.__name__, None) is model_class
    module = "transformers" if exported else model_class.__module__
    name, quoted = model_class.__name__, json.dumps(location, ensure_ascii=False)
    if getattr(model.config, "pruned_heads", None):
        return (f"from {module} import {name}\nfrom hf_tasks.surgery import from_pretrained\n\n"
                f"model = from_pretrained({name}, {quoted})")
    return f"from {module} import {name}\n\nmodel = {name}.from_pretrained({quoted})"


def _model_card(config: dict, results: dict, card: dict, usage: str, notes: str = "") -> str:
    base_model = config.get("model_name_or_path")
    dataset = config.get("dataset_name")
    front = {"library_name": "transformers", "tags": ["hf_tasks", *card.get("tags", [])]}
    if base_model and not Path(base_model).exists():
        front["base_model"] = base_model
    if dataset and not Path(dataset).exists():
        front["datasets"] = [dataset]
    metric_rows = "\n".join(
        f"| {name} | {value:.4f} |" if isinstance(value, float) else f"| {name} | {value} |"
        for name, value in results.items()
        if name.startswith(("eval_", "test_")) and not name.endswith(("_runtime", "_per_second"))
    )
    hyper = ["learning_rate", "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps",
             "warmup_steps", "weight_decay", "seed", "max_seq_length"]
    hyper_rows = "\n".join(f"| {name} | {config[name]} |" for name in hyper if name in config)
    title = card.get("title") or Path(config.get("output_dir", "model")).name
    return (
        f"---\n{yaml.safe_dump(front, allow_unicode=True, sort_keys=False)}---\n\n"
        f"# {title}\n\n{card.get('description', '')}\n\n"
        f"Base model: `{base_model or config.get('config_name')}`. "
        f"Data: `{dataset or config.get('train_file') or config.get('data_dir')}`.\n\n"
        f"## Results\n\n| metric | value |\n|---|---|\n{metric_rows}\n\n"
        f"{notes}"
        f"## Load it\n\n```python\n{usage}\n```\n\n"
        f"## Training\n\n| hyperparameter | value |\n|---|---|\n{hyper_rows}\n\n"
        f"Trainable parameters: {results.get('trainable_params')} of {results.get('total_params')}. "
        "The full configuration is in `config.yaml`; rerun it with "
        f"`python {card.get('recipe', 'recipes/<recipe>.py')} --config config.yaml`.\n"
    )


def _log_to_wandb(training_args: TrainingArguments, results: dict, files: list[Path]) -> None:
    if "wandb" not in (training_args.report_to or []):
        return
    import wandb

    if wandb.run is None:
        return
    wandb.run.summary.update({key: value for key, value in results.items() if isinstance(value, (int, float))})
    images = {f"plots/{path.stem}": wandb.Image(str(path)) for path in files if path.suffix == ".png"}
    if images:
        wandb.log(images)


def _summary(task: Task, results: dict, output_dir: Path, files: list[Path]) -> str:
    lines = ["", "=" * 72]
    for prefix, name in (("eval", "validation"), ("test", "test")):
        scored = {key[len(prefix) + 1:]: value for key, value in results.items() if key.startswith(f"{prefix}_")}
        if scored:
            lines.append(f"{name:>10}: {task.summary(scored)}")
    lines.append(f"parameters: {results['trainable_params']:,} trainable of {results['total_params']:,}")
    lines.append(f"    output: {output_dir.resolve()}")
    lines.append("     files: results.json, config.yaml, README.md, " + ", ".join(path.name for path in files))
    lines.append("=" * 72)
    return "\n".join(lines)
