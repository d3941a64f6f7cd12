"""The Trainer's arguments as every recipe takes them, and `parse`: a recipe's groups from YAML defaults + CLI
overrides, with the Trainer's value checks and the run object (`RunState`).

Recipes parse the shared groups (`hf_tasks.options`: `ModelArguments`, `DataArguments`, a head group), their own
task dataclass and `TrainingArguments` with one `HfArgumentParser` (`hf_tasks.parsing`, which the commands
share). `--config file.yaml` supplies defaults for any of their fields; flags given on the command line win.

A config may name `base: other.yaml` and hold only its differences (`hf_tasks.config_files`).
Paths in a config: a path the run reads (`PATH_ARGUMENTS`) is looked up beside the config file that
gives it (a base's paths beside the base) first, then in the current directory; a path the run writes
(`output_dir`, caches) is relative to the current directory. A run folder's `config.yaml` stores
absolute paths and no base, so it reruns from anywhere. `--flag none` on the command line unsets a
value the config gave (for arguments that default to unset), and a data source given on the command
line replaces the config's (`DATA_SOURCES`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import transformers

from hf_tasks.data.bad_rows import BadRows
from hf_tasks.errors import BadInputError
from hf_tasks.options import DataArguments
from hf_tasks.parsing import parse_options
from hf_tasks.run_state import RunState

# The ways to give a recipe its data. One given on the command line replaces every other one a config set.
DATA_SOURCES = {
    "hub dataset": ("dataset_name", "dataset_config_name"),
    "local files": ("train_file", "validation_file", "test_file"),
    "folder": ("data_dir",),
    "images": ("images", "mask_dir"),
}


# bf16 as the CPU computes it without AVX512-BF16 or AMX: emulated, measured ~9x slower than fp32 (MiniLM on
# FarsTail, 80 s against 9 s a step; issue 37).
EMULATED_BF16_SLOWDOWN = 9


def has_accelerator() -> bool:
    """A GPU (or other accelerator) the Trainer would use when --use_cpu is not given."""
    import torch

    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available()) or (
        torch.backends.mps.is_available())


def cpu_has_native_bf16() -> bool:
    """The CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere torch emulates it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a Slurm job's share, a container's)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# The Trainer's arguments that follow the hardware (`TrainingArguments._follow_the_hardware`; the Trainer turns
# memory pinning off on the CPU).
HARDWARE_DECIDED = ("bf16", "use_cpu", "dataloader_num_workers", "dataloader_pin_memory")


def _bf16_request(value: Any) -> str:
    """--bf16 / a config's bf16 as one of auto, true, false; anything else refused in one line."""
    word = str(value).strip().lower()
    word = {"1": "true", "yes": "true", "0": "false", "no": "false"}.get(word, word)
    if word not in ("auto", "true", "false"):
        raise BadInputError(f"--bf16 {value}: give auto (bf16 on a GPU that supports it, fp32 elsewhere), true or "
                            "false.")
    return word


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    """The Trainer's arguments, plus the run folder's safety rule (transformers 5.x dropped the flag),
    what a push to the Hub carries, precision and loader workers that follow the hardware, and the
    progress line's interval."""

    bf16: str = field(
        default="false",
        metadata={"help": "bf16 mixed precision: auto (bf16 on a GPU that supports it, fp32 elsewhere: on a CPU, "
                          "or a GPU older than Ampere), true or false. The recipes' configs say auto.",
                  "nargs": "?", "const": "true"},
    )
    progress_interval_seconds: float = field(
        default=30.0,
        metadata={"help": "Write a progress line (step, epoch, samples/s, elapsed, ETA, last loss) to the log every "
                          "this many seconds of training; 0 turns it off."},
    )

    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Train into an --output_dir that already holds files, replacing the earlier run's own "
                          "files (files it did not write stay). Without it such a folder stops the run."},
    )
    hub_strategy: str = field(
        default="end",
        metadata={"help": "What --push_to_hub uploads: 'end' (default) the final model, card and code once; "
                          "'every_save' also the model and training_args.bin at each save; 'checkpoint' / "
                          "'all_checkpoints' also the latest / every checkpoint folder, to resume from. The final "
                          "push leaves training_args.bin out unless a checkpoint strategy is chosen."},
    )
    hub_license: str | None = field(
        default=None,
        metadata={"help": "License identifier written to the model card's metadata (e.g. apache-2.0, cc-by-4.0); "
                          "'unknown' when unset."},
    )
    fast_gpu: bool = field(
        default=False,
        metadata={"help": "A compiled, shape-bucketed training step for small batches on a GPU: token batches padded "
                          "up to multiples of 64 (at most the task's max_seq_length), torch.compile (mode "
                          "reduce-overhead, i.e. CUDA graphs, on CUDA), no per-step host syncs (no NaN/inf loss "
                          "filter), 2 persistent loader workers at least, and the last short batch of an epoch "
                          "dropped. Pays ~1 min of compilation first."},
    )

    def __post_init__(self):
        # Several trackers in one flag: --report_to tensorboard,mlflow (the Trainer takes one name, or a list
        # from a config).
        if isinstance(self.report_to, str) and "," in self.report_to:
            self.report_to = [name.strip() for name in self.report_to.split(",") if name.strip()]
        if self.fast_gpu:
            self._fast_gpu_settings()
        self.hardware_notes: list[tuple[int, str]] = []  # (logging level, message), logged by runner.setup
        # What this machine decides is saved as the user gave it (config.yaml), so the saved config reruns on
        # other hardware as it would have run there: bf16 auto, no --use_cpu, memory pinning, all workers.
        self.as_given = {name: getattr(self, name) for name in HARDWARE_DECIDED}
        self._follow_the_hardware()  # after --fast_gpu's loader workers, so the cap holds for them too
        super().__post_init__()

    def _follow_the_hardware(self) -> None:
        """Resolve --bf16 auto, run on the CPU without --use_cpu where there is no GPU, and cap the loader
        workers at the CPUs this process may use; what was decided goes to `hardware_notes`."""
        request = _bf16_request(self.bf16)
        accelerator = not self.use_cpu and has_accelerator()
        if not accelerator and not self.use_cpu:
            self.use_cpu = True  # nothing else to run on; the Trainer would refuse bf16 without it
        if request == "auto":
            from transformers.utils import is_torch_bf16_gpu_available

            self.bf16 = accelerator and is_torch_bf16_gpu_available()
            where = "a GPU that supports it" if self.bf16 else ("a GPU without bf16" if accelerator else "the CPU")
            self.precision = f"{'bf16' if self.bf16 else 'fp32'} (--bf16 auto on {where})"
        else:
            self.bf16 = request == "true"
            self.precision = f"{'bf16' if self.bf16 else 'fp32'} (--bf16 {request})"
            if self.bf16 and self.use_cpu and not cpu_has_native_bf16():
                self.hardware_notes.append((logging.WARNING, (
                    f"--bf16 true on a CPU without native bf16 (no AVX512-BF16 or AMX): torch emulates it, about "
                    f"{EMULATED_BF16_SLOWDOWN}x slower than fp32; pass --bf16 auto (or false) to train in fp32.")))
        cpus = usable_cpus()
        if self.dataloader_num_workers > cpus:
            self.hardware_notes.append((logging.INFO, (
                f"--dataloader_num_workers {self.dataloader_num_workers} capped at {cpus}, the CPUs this process may "
                "use.")))
            self.dataloader_num_workers = cpus

    def _fast_gpu_settings(self) -> None:
        """What --fast_gpu means, set before the Trainer's own checks; the buckets are the runner's
        (`hf_tasks.tasks.buckets.ShapeBuckets`). Compile settings the user gave stay."""
        import torch

        self.torch_compile = True
        if self.torch_compile_mode is None and torch.cuda.is_available() and not self.use_cpu:
            self.torch_compile_mode = "reduce-overhead"
        # `isnan(loss) or isinf(loss)` after every step makes the host wait for the GPU.
        self.logging_nan_inf_filter = False
        self.dataloader_num_workers = max(self.dataloader_num_workers, 2)
        self.dataloader_persistent_workers = True
        # One batch size per bucket: a short last batch would be one more shape to compile and record.
        self.dataloader_drop_last = True


def parse(*dataclass_types: type, args: list[str] | None = None, description: str | None = None,
          unused: tuple[str, ...] = (), usage: str | None = None, forward_unknown: bool = False) -> RunState:
    """Parse a recipe's `dataclass_types` as `hf_tasks.parsing.parse_options` does (a data source given on the
    command line replacing the config's, `DATA_SOURCES`), then refuse Trainer values no run can use.

    Returns the run object: one instance per dataclass type (iterating gives them in order, `state[T]`
    finds one by type), the flags none of them knows when `forward_unknown` (`state.forwarded`) and the
    run's state (the bad-row log, the data source in words).
    """
    instances, forwarded = parse_options(*dataclass_types, args=args, description=description, unused=unused,
                                         usage=usage, forward_unknown=forward_unknown, alternatives=DATA_SOURCES)
    for instance in instances:
        if isinstance(instance, transformers.TrainingArguments):
            check_training_values(instance)
    data_args = next((instance for instance in instances if isinstance(instance, DataArguments)), None)
    if data_args is None:
        state = RunState(instances)
    else:
        state = RunState(instances, bad_rows=BadRows(data_args.skip_bad_rows), data_source=data_source(data_args))
    state.forwarded = forwarded
    return state


def check_training_values(training_args: transformers.TrainingArguments) -> None:
    """Values the Trainer accepts but cannot use, refused before any data is read or model built: a run
    that would train no step, a batch of no examples, a rate below zero, a tracker nobody knows, a progress
    interval below zero. The one home of these checks, after the Trainer's own (`__post_init__`)."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    for flag in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(training_args, flag) < 1:
            raise BadInputError(f"--{flag} {getattr(training_args, flag)}: give a whole number, 1 or more.")
    if getattr(training_args, "progress_interval_seconds", 0) < 0:  # ours: a plain Trainer has no progress line
        raise BadInputError(f"--progress_interval_seconds {training_args.progress_interval_seconds}: give a number "
                            "of seconds, or 0 for no progress lines.")
    if training_args.learning_rate < 0:
        raise BadInputError(f"--learning_rate {training_args.learning_rate}: a rate below zero climbs the loss; "
                            "give a positive rate such as 5e-5.")
    if training_args.do_train and training_args.max_steps <= 0 and not training_args.num_train_epochs > 0:
        raise BadInputError(f"--num_train_epochs {training_args.num_train_epochs}: the run would train no step and "
                            "save an untrained model; give a number of epochs above 0 (or --max_steps N).")
    available = set(get_available_reporting_integrations())
    for name in training_args.report_to or []:
        if name not in INTEGRATION_TO_CALLBACK:
            raise BadInputError(f"--report_to {name}: no such tracker; give none, all, or some of "
                                f"{', '.join(sorted(INTEGRATION_TO_CALLBACK))} separated by commas.")
        if name not in available:
            raise BadInputError(f"--report_to {name}: {name} is not installed; install it (pip install {name}) or "
                                "leave it out.")


def data_source(data_args: DataArguments) -> str:
    """Which data the run reads, in words, for the run log."""
    if data_args.dataset_name:
        config = f" ({data_args.dataset_config_name})" if data_args.dataset_config_name else ""
        return f"hub dataset {data_args.dataset_name}{config}"
    files = [f"{split} {getattr(data_args, dest)}" for split, dest in
             (("train", "train_file"), ("validation", "validation_file"), ("test", "test_file"))
             if getattr(data_args, dest)]
    if data_args.data_dir:
        return f"folder {data_args.data_dir}" + (f", and {', '.join(files)}" if files else "")
    return "local files: " + ", ".join(files) if files else "none given"
