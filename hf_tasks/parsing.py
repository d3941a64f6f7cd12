"""The one command-line parser of every recipe and command: dataclasses with help, YAML defaults, CLI overrides.

`parse_options` parses the fields of argument dataclasses (each with `metadata={"help": ...}`) with one
`HfArgumentParser`; `--config file.yaml` supplies defaults for any of them and flags given on the command
line win. A config may name `base: other.yaml` and hold only its differences; a path it gives that the
command reads is looked up beside the config file that gives it (`hf_tasks.config_files`). `--flag none`
on the command line unsets a value the config gave (for arguments that default to unset). Every complaint
is one line naming the flag, what it expects and `--help` (`hf_tasks.errors.OneLineArgumentParser`), and
flags are never abbreviated. `--help` is grouped by dataclass and cached (`hf_tasks.cli_help`).

The recipes' `hf_tasks.args.parse` adds the Trainer's checks and the run object on top; the commands
(`compare A B`, `fetch NAME`, `export RUN`) take their leading words and options with `parse_command`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

from hf_tasks.cli_help import HELP_ALL_FLAG, HELP_FLAGS, answer_help
from hf_tasks.config_files import config_layers, path_beside_config
from hf_tasks.errors import BadInputError, OneLineArgumentParser, argparse_message, program_name

# Written after a flag whose argument defaults to unset, these unset a value the config gave.
UNSET_WORDS = frozenset({"none", "null"})


def _yaml_defaults(path: Path, parser: HfArgumentParser) -> dict[str, Any]:
    """The config's values with its bases merged in, each path the run reads looked up beside the file
    that gave it (a base's paths beside the base)."""
    # A config may name an argument by any of its flags (an earlier name kept as an alias: gru_hidden_size), but
    # not by the `--no_<switch>` complement HfArgumentParser adds: its value would be stored unnegated.
    known = {option[2:]: action for action in parser._actions for option in action.option_strings
             if option.startswith("--") and not isinstance(action, argparse._StoreFalseAction)}
    defaults: dict[str, Any] = {}
    for file, values in config_layers(path):
        unknown = sorted(str(name) for name in set(values) - set(known))
        if unknown:
            raise BadInputError(f"--config {file}: unknown argument(s) {unknown}; {parser.prog} --help lists the "
                                "options.")
        for name, value in values.items():
            _check_config_type(file, name, value, known[name])
            dest = known[name].dest
            defaults[dest] = path_beside_config(file, dest, value)
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


def _replaced_alternatives(given: set[str], defaults: dict[str, Any],
                           alternatives: dict[str, tuple[str, ...]]) -> dict[str, None]:
    """Config values of every alternative other than one the command line gives, unset."""
    chosen = {name for name, dests in alternatives.items() if given & set(dests)}
    if not chosen:
        return {}
    return {dest: None for name, dests in alternatives.items() if name not in chosen
            for dest in dests if defaults.get(dest) not in (None, [])}


class _OptionsParser(OneLineArgumentParser, HfArgumentParser):
    """The dataclasses' parser, its complaints in one line and abbreviations refused."""


def build_parser(*dataclass_types: type, usage: str | None = None) -> HfArgumentParser:
    """The parser of a recipe's or command's argument groups, with `--config` (what `parse_options` and the
    docs' flag tables read), named after the program the user ran."""
    parser = _OptionsParser(dataclass_types, prog=program_name(), usage=f"%(prog)s {usage}" if usage else None)
    parser.add_argument("--config", type=Path, help="YAML file of defaults; command-line flags override it.")
    return parser


def parse_options(*dataclass_types: type, args: list[str] | None = None, description: str | None = None,
                  unused: tuple[str, ...] = (), usage: str | None = None, forward_unknown: bool = False,
                  alternatives: dict[str, tuple[str, ...]] | None = None) -> tuple[tuple[Any, ...], list[str]]:
    """Parse `dataclass_types` from `--config x.yaml` (defaults) and the command line (overrides).

    `description` (the recipe's or command's docstring) opens `--help`, after the usage line (`usage`, after
    the program's name; default: the config and options). `unused` names arguments of the shared
    dataclasses the recipe never reads: `--help` leaves them out and a value for them is refused.
    `forward_unknown`: flags none of the dataclasses knows are returned, in order (the study passes them to
    its runs), instead of refused. `alternatives`: named groups of arguments that are ways to give the same
    thing (a recipe's data sources); one given on the command line unsets the config's others.
    Returns one instance per dataclass type, in order, and the forwarded flags.
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
    defaults.update(_replaced_alternatives(given, defaults, alternatives or {}))
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
    return instances, list(extra)


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


def leading_words(argv: list[str]) -> tuple[list[str], list[str]]:
    """The words before the first option (a command's positionals: the study's configs, compare's run folders)
    and the options after them."""
    words = []
    for word in argv:
        if word.startswith("-"):
            break
        words.append(word)
    return words, argv[len(words):]


def parse_command(options: type, argv: list[str] | None, *, words: tuple[str, ...],
                  description: str) -> tuple[list[str], Any]:
    """A command's leading words, as many as `words` names (RUN_A RUN_B), and its `options` dataclass parsed as a
    recipe's arguments are (`--config`, `--help` from `description`); a missing or extra word is one line."""
    given, rest = leading_words(sys.argv[1:] if argv is None else list(argv))
    # Before the options are parsed: a word after them (`fetch --to data pquad`) would read as the value of a flag
    # or an unknown option, so the message says where the words go instead.
    if len(given) != len(words) and not any(flag in rest for flag in (*HELP_FLAGS, HELP_ALL_FLAG)):
        said = f"got {' '.join(given)}" if given else "got none"
        raise BadInputError(argparse_message(f"give {' '.join(words)} before the options ({said})", program_name()))
    usage = f"{' '.join(words)} [--config FILE.yaml] [--option VALUE ...]"
    (parsed,), _ = parse_options(options, args=rest, description=description, usage=usage)
    return given, parsed
