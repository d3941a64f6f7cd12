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

    def __post_init__(self):
        # Several trackers in one flag: --report_to tensorboard,mlflow (the Trainer takes one name, or a list
        # from a config).
        if isinstance(self.report_to, str) and "," in self.report_to:
            self.report_to = [name.strip() for name in self.report_to.split(",") if name.strip()]
        super().__post_init__()


def _yaml_defaults(path: Path, parser: HfArgumentParser) -> dict[str, Any]:
    """The config's values with its bases merged in, each path the run reads looked up beside the file
    that gave it (a base's paths beside the base)."""
    known = {action.dest for action in parser._actions}
    defaults: dict[str, Any] = {}
    for file, values in config_layers(path):
        unknown = sorted(set(values) - known)
        if unknown:
            raise BadInputError(f"--config {file}: unknown argument(s) {unknown}; run the recipe with --help for "
                                "the list.")
        defaults.update({name: path_beside_config(file, name, value) for name, value in values.items()})
    return defaults


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

    parser = _RecipeParser(dataclass_types, usage=f"%(prog)s {usage}" if usage else None)
    parser.add_argument("--config", type=Path, help="YAML file of defaults; command-line flags override it.")
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
    data_args = next((instance for instance in instances if isinstance(instance, DataArguments)), None)
    if data_args is None:
        state = RunState(instances)
    else:
        state = RunState(instances, bad_rows=BadRows(data_args.skip_bad_rows), data_source=data_source(data_args))
    state.forwarded = list(extra)
    return state


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
