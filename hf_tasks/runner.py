"""The one place that builds a Trainer, trains, evaluates, predicts and writes the run folder.

Every recipe starts with `setup(state)` and ends with `run(task, model, state, ...)`, `state` being the
run object `hf_tasks.args.parse` gave it (`hf_tasks.run_state.RunState`). The run folder then holds the saved
model, `results.json`, `config.yaml`, prediction files and plots from the task, `training_curves.png`
and a model card (`README.md`), and is pushed to the Hub with `--push_to_hub`.

Each of those files is written atomically (`hf_tasks.files`), and `results.json` comes last, after the
manifest: a folder holding it is a finished run, whatever moment a kill chose.
"""

from __future__ import annotations

import logging
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import torch
import yaml
from accelerate.utils import get_int_from_env, parse_flag_from_env
from transformers import DataCollatorWithPadding, Trainer, TrainerCallback, TrainingArguments, set_seed
from transformers.trainer import TRAINING_ARGS_NAME
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, HubStrategy
from transformers.utils.hub import hf_api
from transformers.training_args import ParallelMode

from hf_tasks.data.splits import METRIC_PREFIX_OF_SPLIT, SPLIT_OF_METRIC_PREFIX
from hf_tasks.errors import BadInputError, RunAlreadyFinished, TrainingInterrupted
from hf_tasks.files import write_atomic, write_json
from hf_tasks.interrupt import GracefulInterrupt
from hf_tasks.plots import plot_training_curves
from hf_tasks.modeling.loading import check_hub_ids
from hf_tasks.modeling.padding_free import enable_padding_free
from hf_tasks.model_card import loading_code, lora_loading_code, model_card_text, package_versions
from hf_tasks.portable import pipeline_task, ship_code
from hf_tasks.run_log import ProgressLog, configure_logging, log_start, use_metrics_log
from hf_tasks.run_folder import (
    RESULTS,
    RUN_STARTED,
    check_output_dir,
    clear_previous_run,
    fault_point,
    remove_interrupted_writes,
    resolve_checkpoint,
    WrittenFiles,
    snapshot,
    write_manifest,
)
from hf_tasks.run_state import RunState
from hf_tasks.secrets import redact_text
from hf_tasks.surgery import parameter_counts
from hf_tasks.surgery.lora import (
    BASE_MODEL_FOLDER,
    MERGED_MODEL_FOLDER,
    LoraArguments,
    frozen_base,
    is_peft_model,
    merged_model,
)
from hf_tasks.tasks.base import Task
from hf_tasks.tasks.buckets import BUCKET_MULTIPLE, ShapeBuckets, bucket_lengths
from hf_tasks.throughput import Throughput, dense_peak_tflops, throughput_text
from hf_tasks.trackers import Trackers

logger = logging.getLogger("hf_tasks")


# What the launchers export: torchrun and accelerate set WORLD_SIZE, MPI launchers their own names.
LAUNCHED_PROCESSES_ENV = ["WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"]
# accelerate launch exports these for its FSDP and DeepSpeed config types.
LAUNCH_TYPE_ENV = {"ACCELERATE_USE_FSDP": "an FSDP", "ACCELERATE_USE_DEEPSPEED": "a DeepSpeed"}


class LaunchError(BadInputError):
    """A launch the Trainer would not run as the one job the user asked for; the message is one line."""


def check_launch(training_args: TrainingArguments) -> None:
    """Stop when the launcher started several processes but the Trainer would run each on its own.

    Each such process trains the whole model alone and writes the same output folder, and the run ends
    with whichever wrote last. Every process sees the same environment, so every process stops here,
    before any data is read and without waiting on the others.
    """
    launched = get_int_from_env(LAUNCHED_PROCESSES_ENV, 1)
    if launched <= 1 or training_args.parallel_mode not in (ParallelMode.NOT_PARALLEL, ParallelMode.NOT_DISTRIBUTED):
        return
    config = next((kind for variable, kind in LAUNCH_TYPE_ENV.items() if parse_flag_from_env(variable)), "this")
    raise LaunchError(
        f"The launcher started {launched} processes with {config} launch config, but the Trainer would run each "
        f"alone on {training_args.device} (parallel mode {training_args.parallel_mode.value}), every one training "
        "the whole model into the same --output_dir. Without GPUs, launch with `accelerate launch --config_file "
        "recipes/accelerate/cpu_ddp.yaml` or `torchrun --nproc_per_node N` and pass --use_cpu true; the FSDP "
        "and DeepSpeed presets need GPUs."
    )


def setup(state: RunState) -> None:
    """Before any data is read or model built: a launch the Trainer would not run as one job stops
    (`check_launch`), then the output folder's rules (see `hf_tasks.run_folder`), logging (info on the
    main process, warnings elsewhere) and the seed."""
    training_args = state.training_args
    check_launch(training_args)
    for arguments in state:
        check_hub_ids(arguments)
    try:
        check_output_dir(training_args)
    except RunAlreadyFinished as finished:
        print(finished.message, file=sys.stderr, flush=True)  # logging is not set up yet
        raise
    if training_args.do_train:
        overwrites = getattr(training_args, "overwrite_output_dir", False) and resolve_checkpoint(training_args) is None
        with training_args.main_process_first(desc="clearing the earlier run"):
            if training_args.process_index == 0 and overwrites:
                clear_previous_run(training_args.output_dir)
            elif training_args.process_index == 0:  # a new folder, or one this run resumes or restarts
                remove_interrupted_writes(training_args.output_dir)
    configure_logging(training_args)
    if training_args.process_index == 0:
        for level, message in getattr(training_args, "hardware_notes", ()):
            logger.log(level, message)
    set_seed(training_args.seed)
    if training_args.hub_token:
        # The Trainer pickles its arguments into every checkpoint (training_args.bin); the token must
        # not travel with them. huggingface_hub reads it from the environment when pushing.
        os.environ["HF_TOKEN"] = training_args.hub_token
        training_args.hub_token = None


class RunTrainingLoss(TrainerCallback, ExportableState):
    """The sum of the training losses of every step so far, saved in each checkpoint.

    The Trainer's `train_loss` averages only the steps run since `train()` was called, so after a
    resume it would describe the resumed part alone. `TaskTrainer` records the sum before each
    checkpoint is written and, at the end, averages over the whole run.
    """

    def __init__(self):
        self.loss_sum = 0.0
        self.steps = 0
        self._resumed_sum = 0.0
        self._resumed_steps = 0

    def state(self) -> dict:
        return {"args": {}, "attributes": {"loss_sum": self.loss_sum, "steps": self.steps}}

    def on_train_begin(self, args, state, control, **kwargs):
        # Read here rather than left to the Trainer, which restores callback states only with
        # --restore_callback_states_from_checkpoint; setdefault covers checkpoints written without it.
        stored = state.stateful_callbacks.setdefault(type(self).__name__, self.state())["attributes"]
        self._resumed_sum, self._resumed_steps = stored["loss_sum"], stored["steps"]

    def record(self, loss_sum_since_resume: float, global_step: int) -> None:
        self.loss_sum, self.steps = self._resumed_sum + loss_sum_since_resume, global_step

    def whole_run_mean(self, mean_since_resume: float, global_step: int) -> float:
        steps_since_resume = global_step - self._resumed_steps
        return (self._resumed_sum + mean_since_resume * steps_since_resume) / max(global_step, 1)


class TaskTrainer(Trainer):
    """A Trainer that scores predictions through the task, so metrics appear wherever eval loss does,
    and whose `train_loss` averages every step of the run, also after a resume."""

    def __init__(self, *args, task: Task, **kwargs):
        super().__init__(*args, **kwargs)
        self.task = task
        self.add_callback(RunTrainingLoss())
        self.progress = ProgressLog()
        self.add_callback(self.progress)
        # Throughput (hf_tasks.throughput): the work of training steps and of the running evaluation, and
        # the seconds evaluations took out of training.
        self.peak_tflops = dense_peak_tflops(self.args)
        self._training_work, self._evaluation_work = Throughput(), Throughput()
        self._evaluation_seconds_in_training = 0.0
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
        self._evaluation_work = Throughput()
        began = time.perf_counter()
        output = super().evaluation_loop(
            dataloader, description, prediction_loss_only=False, ignore_keys=ignore_keys,
            metric_key_prefix=metric_key_prefix,
        )
        seconds = time.perf_counter() - began
        if self.is_in_train:
            self._evaluation_seconds_in_training += seconds
        output.metrics.update(self._throughput(self._evaluation_work, metric_key_prefix, seconds, training=False))
        scores = self.task.score(SPLIT_OF_METRIC_PREFIX[metric_key_prefix], output.predictions, output.label_ids)
        output.metrics.update({f"{metric_key_prefix}_{name}": value for name, value in scores.items()})
        return output

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        # The evaluation's data loader draws its seed from torch's global generator. Within training that
        # draw would come after a checkpoint saved at the same step stored the generator, so a run resumed
        # from that checkpoint would train on with other dropout masks than the run that went straight on.
        with torch.random.fork_rng(devices=[]):
            return super().evaluate(*args, **kwargs)

    def _run_training_loss(self) -> RunTrainingLoss:
        # Looked up each time: --restore_callback_states_from_checkpoint replaces the instance.
        return next(callback for callback in self.callback_handler.callbacks if isinstance(callback, RunTrainingLoss))

    def _throughput(self, work: Throughput, prefix: str, seconds: float, training: bool) -> dict[str, float]:
        reduce = (lambda value: self.accelerator.reduce(value.to(self.accelerator.device), "sum")) \
            if self.args.world_size > 1 else (lambda value: value)
        return work.figures(prefix, self.task.work_unit, seconds, self.accelerator.unwrap_model(self.model),
                            self.peak_tflops, training, reduce)

    def training_step(self, model, inputs, num_items_in_batch=None):
        fault_point("train_step")
        self._training_work.add(self.task.batch_work(inputs), inputs)
        loss = super().training_step(model, inputs, num_items_in_batch)
        # Divided by the accumulation steps as the Trainer's logged loss is; summed per optimizer step.
        self.progress.add_loss(loss)
        return loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        self._evaluation_work.add(self.task.batch_work(inputs), inputs)
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        fault_point("checkpoint_save")  # the weights and optimizer are written, trainer_state.json is not

    def _save_checkpoint(self, model, trial) -> None:
        # The Trainer's own running sum since train() began: logged steps, plus those not logged yet.
        since_resume = self._total_loss_scalar + self._tr_loss.item()
        self._run_training_loss().record(since_resume, self.state.global_step)
        super()._save_checkpoint(model, trial)

    def train(self, *args, **kwargs):
        output = super().train(*args, **kwargs)
        return output._replace(training_loss=output.metrics["train_loss"])

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "train_loss" in logs:
            # In place: the Trainer returns this same dict as train()'s metrics.
            logs["train_loss"] = self._run_training_loss().whole_run_mean(logs["train_loss"], self.state.global_step)
            training_seconds = logs.get("train_runtime", 0.0) - self._evaluation_seconds_in_training
            logs.update(self._throughput(self._training_work, "train", training_seconds, training=True))
        super().log(logs, start_time)

    def create_model_card(self, **kwargs) -> None:
        """Keep the card `run` wrote (the Trainer's own would overwrite it when pushing)."""
        card = Path(self.args.output_dir) / "README.md"
        if not card.exists():
            super().create_model_card(**kwargs)

    def push_to_hub(self, commit_message: str | None = "End of training", blocking: bool = True,
                    token: str | None = None, revision: str | None = None, private: bool | None = None, **kwargs):
        """`Trainer.push_to_hub`, except that the model goes up with its shipped code and `auto_map`, and
        training_args.bin stays local unless `hub_strategy` pushes checkpoints (the user asked for what
        resuming needs); checkpoint folders never go up from here."""
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        token = token if token is not None else self.args.hub_token
        if self.hub_model_id is None:
            self.init_hf_repo(token=token, private=private)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        # Saving rewrote config.json without the auto_map that points at the shipped code.
        ship_code(self.accelerator.unwrap_model(self.model), self.args.output_dir)
        self.create_model_card(**kwargs)
        self._finish_current_push()
        # Manifests list what this machine's runs wrote: a copy downloaded from the Hub must not carry one.
        ignore = ["_*", f"{PREFIX_CHECKPOINT_DIR}-*", ".hf_tasks-*"]
        if self.args.hub_strategy not in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
            ignore.append(TRAINING_ARGS_NAME)
        return hf_api().upload_folder(repo_id=self.hub_model_id, folder_path=self.args.output_dir,
                                      commit_message=commit_message, token=token, run_as_future=not blocking,
                                      ignore_patterns=ignore, revision=revision or self.args.hub_revision)


class HideCompletionNotice(logging.Filter):
    """Drops the Trainer's "Training completed" notice when a signal stopped training: an interrupted
    run must not read as a finished one."""

    def __init__(self, interrupt: GracefulInterrupt):
        super().__init__()
        self.interrupt = interrupt

    def filter(self, record: logging.LogRecord) -> bool:
        return self.interrupt.stopped_by is None or "Training completed" not in record.getMessage()


def check_sequence_length(task: Task, model) -> None:
    """Stop before any window is built when the task's `max_seq_length` exceeds the positions the model has
    (it would fail mid-training, at the first batch that long)."""
    length = getattr(task, "max_seq_length", None)
    config = getattr(model, "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(length, int) or not isinstance(positions, int):
        return
    tokenizer_limit = getattr(getattr(task, "tokenizer", None), "model_max_length", None)
    # RoBERTa-style models keep the first positions for padding: their tokenizer states the usable length
    usable = min(positions, tokenizer_limit) if isinstance(tokenizer_limit, int) and tokenizer_limit < 10**6 \
        else positions
    if length > usable:
        raise BadInputError(f"--max_seq_length {length}: {config.model_type or 'the'} model reads at most {usable} "
                            f"tokens (max_position_embeddings {positions}); give --max_seq_length {usable} or less.")


def apply_task_settings(task: Task, training_args: TrainingArguments) -> None:
    """Set the Trainer arguments the task needs (`Task.trainer_settings`), saying which it changed, and
    refuse a `--metric_for_best_model` the task will not report (`Task.unavailable_metrics`)."""
    for name, value in task.trainer_settings().items():
        if getattr(training_args, name) != value:
            logger.info("The %s task needs --%s %s; set.", type(task).__name__, name, value)
            setattr(training_args, name, value)
    best = training_args.metric_for_best_model or ""
    reason = task.unavailable_metrics().get(best.removeprefix("eval_"))
    if reason is not None:
        raise BadInputError(f"--metric_for_best_model {best} is {reason}.")


def prepare_padding_free(task: Task, model, state: RunState) -> None:
    """With `--padding_free`: refuse a task that cannot take flattened batches, else make the model read
    them (`hf_tasks.modeling.padding_free`, which refuses a model that cannot)."""
    if not state.config().get("padding_free"):  # a DataArguments flag; recipes without it never ask
        return
    if task.padding_free_refusal is not None:
        raise BadInputError(f"--padding_free: the {type(task).__name__} cannot take it ({task.padding_free_refusal}); "
                            "leave it out.")
    enable_padding_free(model)
    logger.info("Padding-free batches: each batch's sequences in one row, the head reading each at its boundary.")


def batch_collator(task: Task, training_args: TrainingArguments, processing_class):
    """The task's collator; with `--fast_gpu` wrapped in shape buckets (`hf_tasks.tasks.buckets`) where it
    makes token batches, so the compiled step meets at most one shape per bucket."""
    if not getattr(training_args, "fast_gpu", False) or getattr(processing_class, "pad_token_id", None) is None:
        return task.data_collator
    if task.padding_free:
        raise BadInputError("--fast_gpu with --padding_free: a flattened row has a new length every batch, which "
                            "a compiled step cannot reuse; choose one of them.")
    max_length = getattr(task, "max_seq_length", None)
    logger.info("--fast_gpu: token batches padded to the buckets %s; torch.compile (%s), %d loader workers.",
                bucket_lengths(max_length) if max_length else f"multiples of {BUCKET_MULTIPLE}",
                training_args.torch_compile_mode or "default mode", training_args.dataloader_num_workers)
    return ShapeBuckets(task.data_collator or DataCollatorWithPadding(processing_class), processing_class.pad_token_id,
                        max_length, getattr(processing_class, "padding_side", "right"))


def run(
    task: Task,
    model,
    state: RunState,
    *,
    processing_class=None,
    callbacks: Iterable = (),
    optimizers=(None, None),
    model_card: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train / evaluate / predict as the run's training arguments ask, write the run folder, return the
    results."""
    with WrittenFiles(state.output_dir) as written:  # what the manifest may list: this process's own writes
        return _run(task, model, state, written, processing_class=processing_class, callbacks=callbacks,
                    optimizers=optimizers, model_card=model_card)


def _run(task: Task, model, state: RunState, written: WrittenFiles, *, processing_class, callbacks: Iterable,
         optimizers, model_card: dict[str, Any] | None) -> dict[str, Any]:
    started = time.perf_counter()
    training_args, output_dir = state.training_args, state.output_dir
    folder_before = snapshot(output_dir) if training_args.process_index == 0 else {}
    if training_args.do_train and training_args.process_index == 0:
        write_json(output_dir / RUN_STARTED, {"started": time.strftime("%Y-%m-%dT%H:%M:%S")})
    apply_task_settings(task, training_args)
    check_sequence_length(task, model)
    prepare_padding_free(task, model, state)
    features = task.features(training_args)
    for flag, split in (("do_train", "train"), ("do_eval", "validation"), ("do_predict", "test")):
        if getattr(training_args, flag) and features.get(split) is None:
            raise BadInputError(f"--{flag} needs the {split} split, but the task built none; give the matching "
                                "data.")
    checkpoint = resolve_checkpoint(training_args) if training_args.do_train else None
    trackers = Trackers.for_training(training_args, state.config())
    callbacks = [*callbacks, *trackers.callbacks()]
    interrupt = GracefulInterrupt()
    if training_args.do_train:
        callbacks.append(interrupt)

    trainer = TaskTrainer(
        model=model,
        args=training_args,
        train_dataset=features.get("train") if training_args.do_train else None,
        eval_dataset=features.get("validation"),
        data_collator=batch_collator(task, training_args, processing_class),
        processing_class=processing_class,
        callbacks=callbacks,
        optimizers=optimizers,
        task=task,
    )
    use_metrics_log(trainer)
    trackers.attach(trainer)
    results: dict[str, Any] = parameter_counts(model)
    log_start(redact_text(state.data_description()), features, task, model, results, output_dir.resolve(),
              training_args)
    logger.info("Throughput: %s per second (not padding)%s", task.work_unit.replace("_", " "),
                f"; MFU against {trainer.peak_tflops:g} TFLOP/s dense" if trainer.peak_tflops else
                "; MFU only on a GPU with a known bf16/fp16 peak, training in bf16 or fp16")

    if training_args.do_train:
        trainer_logger, notice_filter = logging.getLogger(Trainer.__module__), HideCompletionNotice(interrupt)
        trainer_logger.addFilter(notice_filter)
        try:
            train_output = trainer.train(resume_from_checkpoint=checkpoint)
        finally:
            interrupt.restore()  # train() may raise before on_train_end puts the signal handlers back
            trainer_logger.removeFilter(notice_filter)
        if interrupt.stopped_by is not None:
            # Nothing final is written: no model, results or card that would pass for a finished run.
            saved = output_dir / f"checkpoint-{interrupt.stopped_at_step}"
            logger.warning("Interrupted by %s at step %s; %s holds the checkpoint. Continue with the same "
                           "command plus --resume_from_checkpoint auto.", interrupt.stopped_by,
                           interrupt.stopped_at_step, saved)
            trackers.close("KILLED")
            raise TrainingInterrupted(interrupt.signal_number, interrupt.stopped_at_step, str(saved))
        trainer.save_model()
        trainer.save_state()
        results.update(train_output.metrics)
        results.update(parameter_counts(trainer.model))  # surgery during training (pruning) may shrink it
    if training_args.do_eval:
        results.update(trainer.evaluate())
        trained = trainer.accelerator.unwrap_model(trainer.model)
        if training_args.do_train and training_args.should_save and not is_peft_model(trained):
            # Evaluation may tune a setting the model keeps in its config (QA's no-answer threshold);
            # a LoRA run's base_model/ and merged/ are written after this, config included.
            trained.config.save_pretrained(output_dir)
    if training_args.do_predict:
        results.update(trainer.predict(features["test"], metric_key_prefix="test").metrics)
    results["wall_time_seconds"] = round(time.perf_counter() - started, 2)
    results.update(peak_memory(training_args))
    results["versions"] = package_versions()

    if trainer.is_world_process_zero():
        files = _write_run_folder(trainer, task, results, state, model_card or {})
        trackers.report(results, files, trainer=trainer)
        fault_point("final_writes")
        write_manifest(output_dir, folder_before, written.paths, to_come=[RESULTS])
        fault_point("before_results")
        write_json(output_dir / RESULTS, results)
        logger.info(_summary(task, results, output_dir, files))
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="hf_tasks run")
    return results


def peak_memory(training_args: TrainingArguments) -> dict[str, float]:
    """This process's peak memory so far, in MiB: the GPU's allocations when it trains on CUDA, else the
    process's resident size (what the study table sets beside trainable parameters and time)."""
    if training_args.device.type == "cuda":
        return {"peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated(training_args.device) / 2**20, 1)}
    # ru_maxrss is in KiB on Linux.
    return {"peak_cpu_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _write_lora_folders(model, output_dir: Path, state: RunState, processing_class) -> dict[str, Any]:
    """base_model/ (what the adapter applies to) and, with --merge_lora, merged/; each saved and shipped
    like a run folder's model. Returns folder name → model."""
    lora_args = state.get(LoraArguments)
    folders = {BASE_MODEL_FOLDER: frozen_base(model)}
    if lora_args is not None and lora_args.merge_lora:
        folders[MERGED_MODEL_FOLDER] = merged_model(model)
    for name, folder_model in folders.items():
        folder_model.save_pretrained(output_dir / name)
        if processing_class is not None:
            processing_class.save_pretrained(output_dir / name)
        ship_code(folder_model, output_dir / name)
    return folders


def _write_run_folder(trainer: Trainer, task: Task, results: dict, state: RunState, card: dict) -> list[Path]:
    """Every file of the finished run but the manifest and results.json (which `run` writes after these)."""
    output_dir = Path(trainer.args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    weights = list(output_dir.glob("*.safetensors"))
    if weights:
        results["model_size_mb"] = round(sum(path.stat().st_size for path in weights) / 2**20, 3)
    files: list[Path] = []
    for split, prefix in METRIC_PREFIX_OF_SPLIT.items():
        if any(key.startswith(f"{prefix}_") for key in results):
            files += task.write_predictions(split, output_dir, prefix)
    for name, text in task.run_files().items():
        write_atomic(output_dir / name, text)
        files.append(output_dir / name)
    skipped = state.bad_rows.skipped
    if skipped:
        files.append(write_json(output_dir / "skipped_rows.json", skipped))
        results["skipped_rows"] = len(skipped)
    curves = plot_training_curves(trainer.state.log_history, output_dir / "training_curves.png")
    if curves is not None:
        files.append(curves)
    config = state.config()
    write_atomic(output_dir / "config.yaml", yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    model = trainer.accelerator.unwrap_model(trainer.model)
    if (output_dir / "config.json").is_file():
        files += ship_code(model, output_dir)
    location = trainer.args.hub_model_id if trainer.args.push_to_hub and trainer.args.hub_model_id else str(output_dir)
    if is_peft_model(model):
        folders = _write_lora_folders(model, output_dir, state, trainer.processing_class)
        files += [output_dir / name for name in folders]
        usage = lora_loading_code(folders, location)
    else:
        usage = loading_code(model, location)
    card_text = model_card_text(config, results, card, usage, task.model_card_notes(), pipeline_task(model))
    write_atomic(output_dir / "README.md", card_text)
    return files


def _summary(task: Task, results: dict, output_dir: Path, files: list[Path]) -> str:
    lines = ["", "=" * 72]
    for name, prefix in METRIC_PREFIX_OF_SPLIT.items():
        scored = {key[len(prefix) + 1:]: value for key, value in results.items() if key.startswith(f"{prefix}_")}
        if scored:
            lines.append(f"{name:>10}: {task.summary(scored)}")
    speeds = [f"{name} {throughput_text(results, prefix)}" for name, prefix in
              (("train", "train"), *METRIC_PREFIX_OF_SPLIT.items()) if throughput_text(results, prefix)]
    if speeds:
        lines.append("throughput: " + "; ".join(speeds))
    lines.append(f"parameters: {results['trainable_params']:,} trainable of {results['total_params']:,}")
    lines.append(f"    output: {output_dir.resolve()}")
    lines.append("     files: results.json, config.yaml, README.md, " + ", ".join(path.name for path in files))
    lines.append("=" * 72)
    return "\n".join(lines)
