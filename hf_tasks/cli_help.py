"""`--help` that orients: what the recipe does and how to run it, its own options under one heading
per argument group, then the training options people change most. `--help-all` lists every option,
the Trainer's included. Both wrap whole descriptions to the terminal's width (COLUMNS) and are cached
(`hf_tasks.help_cache`)."""

from __future__ import annotations

import argparse
import copy
import re

from transformers import HfArgumentParser

from hf_tasks import help_cache

HELP_FLAGS = help_cache.HELP_FLAGS
HELP_ALL_FLAG = help_cache.HELP_ALL_FLAG
# The TrainingArguments people change most; --help-all lists the other hundred or so.
COMMON_TRAINING_OPTIONS = (
    "output_dir", "do_train", "do_eval", "do_predict", "num_train_epochs", "learning_rate",
    "per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps", "bf16",
    "use_cpu", "seed", "eval_strategy", "save_strategy", "overwrite_output_dir", "resume_from_checkpoint",
    "report_to", "push_to_hub", "hub_model_id",
)
# Headings for argument groups whose class name does not read well on its own.
GROUP_TITLES = {"QAArguments": "question answering", "LoraArguments": "LoRA",
                "RegimeArguments": "training regime", "Cifar10Arguments": "CIFAR-10",
                "FarsTailArguments": "FarsTail data", "ConstraintArguments": "Constraint data",
                "SearchOptions": "hyperparameter search", "SlurmOptions": "Slurm"}
METAVARS = {int: "N", float: "X", str: "TEXT"}


def answer_help(parser: HfArgumentParser, argv: list[str], description: str | None, unused: frozenset[str]) -> None:
    """Print the recipe's help and exit when `argv` asks for it; otherwise return."""
    if HELP_ALL_FLAG in argv:
        parser.description = description
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        text = parser.format_help().rstrip()
    elif any(flag in argv for flag in HELP_FLAGS):
        text = short_help(parser, description, unused)
    else:
        return
    help_cache.store(text, argv)  # the next such help of this recipe prints it before the heavy imports
    print(text)
    raise SystemExit(0)


def short_help(parser: HfArgumentParser, description: str | None, unused: frozenset[str]) -> str:
    trainer = ", the Trainer's included" if any(map(_is_training_arguments, parser.dataclass_types)) else ""
    shown = argparse.ArgumentParser(
        prog=parser.prog, usage=parser.usage or "%(prog)s [--config FILE.yaml] [--option VALUE ...]",
        description=(description or "").strip(), formatter_class=_CompactFormatter, add_help=False,
        epilog=f"{HELP_ALL_FLAG} lists every option with its whole help{trainer}.\n"
               "--option none unsets a value the config gave. --debug shows the traceback of an error.",
    )
    for title, actions in option_groups(parser, unused):
        group = shown.add_argument_group(title)
        for action in actions:
            compact = _compact(action, first_sentence=title == COMMON_TRAINING_TITLE)
            if action.dest == "config":
                compact.metavar = "FILE.yaml"
            group._add_action(compact)
    return shown.format_help().rstrip()


COMMON_TRAINING_TITLE = "training options people change most (all of them: --help-all)"


def option_groups(parser: HfArgumentParser, unused: frozenset[str]) -> list[tuple[str, list[argparse.Action]]]:
    """The options `--help` shows, as (heading, the options' argparse actions): the recipe's own
    argument groups, the Trainer options people change most, then --config. The docs' flag tables are
    built from this too, so a recipe page lists exactly what its --help does."""
    by_dest = {}
    for action in parser._actions:
        # The first action of a destination is the flag itself; bool fields add a --no_ complement.
        by_dest.setdefault(action.dest, action)
    groups = []
    training_types = [kind for kind in parser.dataclass_types if _is_training_arguments(kind)]
    for kind, names in _fields_by_declaring_class(parser.dataclass_types, training_types).items():
        groups.append((f"{_title(kind)} options",
                       [by_dest[name] for name in names if name not in unused and name in by_dest]))
    if training_types:
        groups.append((COMMON_TRAINING_TITLE, [by_dest[name] for name in COMMON_TRAINING_OPTIONS if name in by_dest]))
    groups.append(("this command", [by_dest["config"]]))
    return groups


class _CompactFormatter(argparse.RawDescriptionHelpFormatter):
    """The help starts in a column wide enough for most flags and wraps, whole, to the terminal's width."""

    def __init__(self, prog: str):
        super().__init__(prog, max_help_position=40)


def _fields_by_declaring_class(kinds, skipped) -> dict[type, list[str]]:
    """Field names under the dataclass that declares them, so that a recipe's argument class built
    from several (images + transfer) shows each part under its own heading; a class that says it is
    one group (`one_help_group = True`, the training regime) shows its fields together."""
    grouped: dict[type, list[str]] = {}
    for kind in kinds:
        if kind in skipped:
            continue
        for name in kind.__dataclass_fields__:
            declaring = kind if getattr(kind, "one_help_group", False) else next(
                base for base in reversed(kind.__mro__) if name in getattr(base, "__annotations__", {}))
            grouped.setdefault(declaring, []).append(name)
    return grouped


def _is_training_arguments(kind: type) -> bool:
    return any(base.__name__ == "TrainingArguments" and base.__module__.startswith("transformers")
               for base in kind.__mro__)


def _title(kind: type) -> str:
    if kind.__name__ in GROUP_TITLES:
        return GROUP_TITLES[kind.__name__]
    # A recipe's argument groups are ...Arguments, a command's options ...Options (StudyOptions: "study").
    return re.sub(r"(?<!^)(?=[A-Z])", " ", kind.__name__.removesuffix("Arguments").removesuffix("Options")).lower()


def _compact(action: argparse.Action, first_sentence: bool = False) -> argparse.Action:
    """The action as one flag (no dashed alias) with a short metavar and, for the Trainer's long
    texts, the first sentence of its help (--help-all has the rest)."""
    compact = copy.copy(action)
    compact.option_strings = action.option_strings[:1]
    if action.choices:
        compact.metavar = "|".join(map(str, action.choices))
    elif action.nargs != 0 and action.metavar is None:  # a field's own metavar (fetch's --to DIR) stays
        compact.metavar = "BOOL" if action.const is True else METAVARS.get(action.type, "VALUE")
    text = action.help or ""
    if first_sentence:
        text = re.split(r"(?<=\.)\s+(?=[A-Z])", text.strip(), maxsplit=1)[0]
    if action.default not in (None, False, [], "", argparse.SUPPRESS):
        # Before the text, where it is seen first.
        text = f"[{action.default}] ".replace("%", "%%") + text
    compact.help = text
    return compact
