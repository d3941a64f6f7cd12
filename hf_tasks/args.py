"""Command-line arguments shared by every recipe, and `parse`: YAML defaults + CLI overrides.

Recipes parse `ModelArguments`, `DataArguments`, their own task dataclass and
`transformers.TrainingArguments` with one `HfArgumentParser`. `--config file.yaml` supplies
defaults for any of their fields; flags given on the command line win.

A config may name `base: other.yaml` and hold only its differences (`hf_tasks.config_files`).
Paths in a config: a path the run reads (`PATH_ARGUMENTS`) is looked up beside the config file that
gives it (a base's paths beside the base) first, then in the current directory; a path the run writes
(`output_dir`, caches) is relative to the current directory. A run folder's `config.yaml` stores
absolute paths and no base, so it reruns from anywhere. `--flag none` on the command line unsets a
value the config gave (for arguments that default to unset), and a data source given on the command
line replaces the config's (`DATA_SOURCES`).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import transformers
from transformers import HfArgumentParser

from hf_tasks.cli_help import answer_help
from hf_tasks.config_files import config_layers, path_beside_config
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.errors import BadInputError, OneLineArgumentParser
from hf_tasks.run_state import RunState

# The ways to give a recipe its data. One given on the command line replaces every other one a config set.
DATA_SOURCES = {
    "hub dataset": ("dataset_name", "dataset_config_name"),
    "local files": ("train_file", "validation_file", "test_file"),
    "folder": ("data_dir",),
    "images": ("images", "mask_dir"),
}
# Written after a flag whose argument defaults to unset, these unset a value the config gave.
UNSET_WORDS = frozenset({"none", "null"})


def _check_folder_or_hub_id(flag: str, value: str | None) -> None:
    """A value that is no folder here and cannot be a hub id either ("org/name") is a missing folder:
    say so, instead of the Hub client's "Repo id must be in the form ..."."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if value is None or Path(value).exists() or value.startswith("hf-hub:"):  # timm's prefix for hub models
        return
    try:
        validate_repo_id(value)
    except HFValidationError:
        raise BadInputError(f"--{flag} {value}: no such folder (and not a hub id such as org/name); "
                            "check the path.") from None


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Hub id (org/name) or local folder of a pretrained model. Unset: build from --config_name."},
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config to build or load with, if not the model's own (hub id or folder)."}
    )
    tokenizer_name: str | None = field(
        default=None, metadata={"help": "Tokenizer / processor, if not the model's own (hub id or folder)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where downloaded models are cached."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of the model on the Hub."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run model code from the Hub. Off unless you trust the repository."}
    )

    def __post_init__(self):
        if self.model_name_or_path is None and self.config_name is None:
            raise BadInputError("Give --model_name_or_path (pretrained) or --config_name (train from scratch).")
        for flag in ("model_name_or_path", "config_name", "tokenizer_name"):
            _check_folder_or_hub_id(flag, getattr(self, flag))

    def pretrained_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every `from_pretrained` call of a recipe shares."""
        return {
            "cache_dir": self.cache_dir,
            "revision": self.model_revision,
            "trust_remote_code": self.trust_remote_code,
        }


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id, or a local folder `datasets.load_dataset` understands."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Configuration of the hub dataset."})
    train_file: str | None = field(default=None, metadata={"help": "Local training file."})
    validation_file: str | None = field(default=None, metadata={"help": "Local validation file."})
    test_file: str | None = field(default=None, metadata={"help": "Local test file."})
    data_dir: str | None = field(default=None, metadata={"help": "Folder of data (audio or image trees)."})
    dataset_cache_dir: str | None = field(default=None, metadata={"help": "Where hub datasets are cached."})
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Maximum tokens per input after tokenisation (task default when unset)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training examples."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation examples."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test examples."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for `datasets.map`."})
    padding_free: bool = field(
        default=False,
        metadata={"help": "Sequence classification: each batch's sequences concatenated into one row (position ids "
                          "restarting per sequence), no padding computed; the head reads each sequence at its own "
                          "boundary. Refused where the model or task cannot keep sequences apart."},
    )
    overwrite_cache: bool = field(default=False, metadata={"help": "Recompute preprocessing instead of reusing it."})
    skip_bad_rows: bool = field(
        default=False,
        metadata={"help": "Skip rows that fail validation (listed in skipped_rows.json) instead of stopping."},
    )

    def __post_init__(self):
        for flag in ("max_train_samples", "max_eval_samples", "max_predict_samples", "max_seq_length",
                     "preprocessing_num_workers"):
            value = getattr(self, flag)
            if value is not None and value < 1:
                raise BadInputError(f"--{flag} {value}: give a whole number of at least 1, or leave it out for all.")


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
        if self.progress_interval_seconds < 0:
            raise BadInputError(f"--progress_interval_seconds {self.progress_interval_seconds}: give a number of "
                                "seconds, or 0 for no progress lines.")
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


def _yaml_defaults(path: Path, parser: HfArgumentParser) -> dict[str, Any]:
    """The config's values with its bases merged in, each path the run reads looked up beside the file
    that gave it (a base's paths beside the base)."""
    known = {action.dest: action for action in parser._actions}
    defaults: dict[str, Any] = {}
    for file, values in config_layers(path):
        unknown = sorted(str(name) for name in set(values) - set(known))
        if unknown:
            raise BadInputError(f"--config {file}: unknown argument(s) {unknown}; run the recipe with --help for "
                                "the list.")
        for name, value in values.items():
            _check_config_type(file, name, value, known[name])
        defaults.update({name: path_beside_config(file, name, value) for name, value in values.items()})
    return defaults


#: What a config must give for a flag argparse reads as a number or a switch (text fields may take lists: report_to).
_SCALAR_KINDS = {"int": "whole number", "float": "number", "string_to_bool": "true or false"}


def _check_config_type(file: Path, name: str, value: Any, action: argparse.Action) -> None:
    """A config value argparse would not read from the command line either (a list for a number, a mapping for
    a switch): argparse converts only string defaults, so anything else would reach the run as is."""
    kind = _SCALAR_KINDS.get(getattr(action.type, "__name__", ""))
    if kind is None or value is None or isinstance(value, str):
        return
    items = value if isinstance(value, list) and action.nargs in ("+", "*") else [value]
    for item in items:
        usable = not isinstance(item, (list, dict))
        try:
            action.type(item)
        except Exception:  # whatever the converter raises (TypeError, ValueError, ArgumentTypeError): not its type
            usable = False
        if not usable:
            raise BadInputError(f"--config {file}: {name}: {value!r} is not a {kind}; give one {kind}.")


def _dests_given(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, str]:
    """The arguments `argv` sets, by destination, each with the option string it was given as."""
    by_option = {option: action.dest for action in parser._actions for option in action.option_strings}
    given = {}
    for token in argv:
        option = token.split("=", 1)[0]
        if option in by_option:
            given.setdefault(by_option[option], option)
    return given


def _take_out_unsets(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], set[str]]:
    """`--flag none` for an argument that defaults to unset: the flag's destination, and `argv` without it.

    The last mention of a flag wins, as in argparse: `--data_dir x --data_dir none` unsets it (the earlier
    value is taken out too) and `--data_dir none --data_dir x` sets it.
    """
    unsettable = {option: action.dest for action in parser._actions if action.default is None
                  for option in action.option_strings}
    kept: list[str | None] = []
    mentions: dict[str, list[int]] = {}  # kept positions of each destination's earlier values
    unset = set()
    index = 0
    while index < len(argv):
        option, _, attached = argv[index].partition("=")
        dest = unsettable.get(option)
        if dest is not None:
            value = attached if attached else (argv[index + 1] if index + 1 < len(argv) else "")
            ends_there = attached or index + 2 >= len(argv) or argv[index + 2].startswith("-")
            if value.lower() in UNSET_WORDS and ends_there:
                unset.add(dest)
                for position in mentions.pop(dest, []):
                    kept[position] = None
                index += 1 if attached else 2
                continue
            unset.discard(dest)
            # The flag and its values (up to the next option) are this mention.
            end = index + 1
            while not attached and end < len(argv) and not argv[end].startswith("--"):
                end += 1
            mentions.setdefault(dest, []).extend(range(len(kept), len(kept) + end - index))
            kept += argv[index:end]
            index = end
            continue
        kept.append(argv[index])
        index += 1
    return [token for token in kept if token is not None], unset


def _replaced_sources(given: set[str], defaults: dict[str, Any]) -> dict[str, None]:
    """Config values of every data source other than one the command line gives, unset."""
    chosen = {source for source, dests in DATA_SOURCES.items() if given & set(dests)}
    if not chosen:
        return {}
    return {dest: None for source, dests in DATA_SOURCES.items() if source not in chosen
            for dest in dests if defaults.get(dest) not in (None, [])}


class _RecipeParser(OneLineArgumentParser, HfArgumentParser):
    """The dataclasses' parser, its complaints in one line and abbreviations refused."""


def build_parser(*dataclass_types: type, usage: str | None = None) -> HfArgumentParser:
    """The parser of a recipe's argument groups, with `--config` (what `parse` and the docs' flag tables read)."""
    parser = _RecipeParser(dataclass_types, usage=f"%(prog)s {usage}" if usage else None)
    parser.add_argument("--config", type=Path, help="YAML file of defaults; command-line flags override it.")
    return parser


def parse(*dataclass_types: type, args: list[str] | None = None, description: str | None = None,
          unused: tuple[str, ...] = (), usage: str | None = None, forward_unknown: bool = False) -> RunState:
    """Parse `dataclass_types` from `--config x.yaml` (defaults) and the command line (overrides).

    `description` (the recipe's docstring) opens `--help`, after the usage line (`usage`, after the
    program's name; default: the config and options). `unused` names arguments of the shared
    dataclasses the recipe never reads: `--help` leaves them out and a value for them is refused.
    `forward_unknown`: flags none of the dataclasses knows are kept, in order, in `state.forwarded` (the
    study passes them to its runs) instead of refused.
    Returns the run object: one instance per dataclass type (iterating gives them in order, `state[T]`
    finds one by type) and the run's state (the bad-row log, the data source in words).
    """
    argv = sys.argv[1:] if args is None else list(args)
    config_parser = OneLineArgumentParser(add_help=False)
    config_parser.add_argument("--config", type=Path)
    known, remaining = config_parser.parse_known_args(argv)

    parser = build_parser(*dataclass_types, usage=usage)
    answer_help(parser, remaining, description, frozenset(unused))
    remaining, unset = _take_out_unsets(parser, remaining)
    given = set(_dests_given(parser, remaining))
    defaults = _yaml_defaults(known.config, parser) if known.config is not None else {}
    defaults.update(_replaced_sources(given, defaults))
    defaults.update(dict.fromkeys(unset))
    parser.set_defaults(**defaults)
    for action in parser._actions:
        if action.dest in defaults:
            action.required = False
    try:
        *parsed, extra = parser.parse_args_into_dataclasses(args=remaining, return_remaining_strings=True)
    except BadInputError:
        raise
    except ValueError as error:
        # Raised by an argument dataclass's checks (ours or the Trainer's): a flag value the user gave.
        raise BadInputError(str(error)) from error
    if extra and not forward_unknown:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    # The last parsed item is the namespace holding --config, which is not a dataclass.
    instances = tuple(parsed[: len(dataclass_types)])
    _refuse_unused(instances, unused)
    for instance in instances:
        if isinstance(instance, transformers.TrainingArguments):
            check_training_values(instance)
    data_args = next((instance for instance in instances if isinstance(instance, DataArguments)), None)
    if data_args is None:
        state = RunState(instances)
    else:
        state = RunState(instances, bad_rows=BadRows(data_args.skip_bad_rows), data_source=data_source(data_args))
    state.forwarded = list(extra)
    return state


def check_training_values(training_args: transformers.TrainingArguments) -> None:
    """Values the Trainer accepts but cannot use, refused before any data is read or model built: a run
    that would train no step, a batch of no examples, a rate below zero, a tracker nobody knows."""
    from transformers.integrations.integration_utils import (
        INTEGRATION_TO_CALLBACK,
        get_available_reporting_integrations,
    )

    for flag in ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps"):
        if getattr(training_args, flag) < 1:
            raise BadInputError(f"--{flag} {getattr(training_args, flag)}: give a whole number, 1 or more.")
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


def _refuse_unused(instances: tuple, unused: tuple[str, ...]) -> None:
    for instance in instances:
        for field_ in dataclasses.fields(instance):
            if field_.name not in unused:
                continue
            default = field_.default_factory() if field_.default_factory is not dataclasses.MISSING else field_.default
            value = getattr(instance, field_.name)
            if value != default:
                raise BadInputError(f"--{field_.name} {value}: this recipe does not use it (see --help for what it "
                                    "reads); leave it out.")


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
