"""Command-line arguments shared by every recipe, and `parse`: YAML defaults + CLI overrides.

Recipes parse `ModelArguments`, `DataArguments`, their own task dataclass and
`transformers.TrainingArguments` with one `HfArgumentParser`. `--config file.yaml` supplies
defaults for any of their fields; flags given on the command line win.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
import transformers
from transformers import HfArgumentParser

from hf_tasks.errors import BadInputError

# Fields never written to config.yaml, results or model cards.
SECRET_FIELDS = frozenset({"hub_token", "token", "push_to_hub_token", "wandb_api_key"})
# Fields about one launch rather than the experiment: a config.yaml rerun in a fresh folder must not
# look for the checkpoint the original run resumed from.
LAUNCH_FIELDS = frozenset({"resume_from_checkpoint", "overwrite_output_dir"})


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


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    """The Trainer's arguments, plus the run folder's safety rule (transformers 5.x dropped the flag) and
    what a push to the Hub carries."""

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


def _yaml_defaults(path: Path, parser: HfArgumentParser) -> dict[str, Any]:
    if not path.is_file():
        raise BadInputError(f"--config {path}: no such file; check the path.")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise BadInputError(f"--config {where}: not valid YAML ({getattr(error, 'problem', None) or error}); "
                            "fix the file.") from error
    if not isinstance(loaded, dict):
        raise BadInputError(f"--config {path}: expected a mapping of argument names to values, got "
                            f"{type(loaded).__name__}; write one 'name: value' per line.")
    known = {action.dest for action in parser._actions}
    unknown = sorted(set(loaded) - known)
    if unknown:
        raise BadInputError(f"--config {path}: unknown argument(s) {unknown}; run the recipe with --help for the list.")
    return loaded


def parse(*dataclass_types: type, args: list[str] | None = None) -> tuple:
    """Parse `dataclass_types` from `--config x.yaml` (defaults) and the command line (overrides).

    Returns one instance per dataclass type, in order.
    """
    argv = sys.argv[1:] if args is None else list(args)
    config_parser = argparse.ArgumentParser(add_help=False)
    config_parser.add_argument("--config", type=Path)
    known, remaining = config_parser.parse_known_args(argv)

    parser = HfArgumentParser(dataclass_types)
    parser.add_argument("--config", type=Path, help="YAML file of defaults; command-line flags override it.")
    if known.config is not None:
        defaults = _yaml_defaults(known.config, parser)
        parser.set_defaults(**defaults)
        for action in parser._actions:
            if action.dest in defaults:
                action.required = False
    *parsed, extra = parser.parse_args_into_dataclasses(args=remaining, return_remaining_strings=True)
    if extra:
        parser.error(f"unrecognised arguments: {' '.join(extra)}")
    # The last parsed item is the namespace holding --config, which is not a dataclass.
    return tuple(parsed[: len(dataclass_types)])


def resolved_config(*instances: Any) -> dict[str, Any]:
    """All argument values of the run as one flat, YAML-safe mapping, without secrets and without
    the fields that belong to one launch (`resume_from_checkpoint`)."""
    resolved: dict[str, Any] = {}
    for instance in instances:
        values = instance.to_dict() if hasattr(instance, "to_dict") else dataclasses.asdict(instance)
        for name, value in values.items():
            if name in SECRET_FIELDS or name in LAUNCH_FIELDS or name.startswith("_"):
                continue
            resolved[name] = value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)
    return resolved
