"""What a user caused, said in one line: bad data, bad flags, a folder the run may not write into.

Recipes let these propagate; `one_line_errors` shows the command line their message, not a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import unicodedata
from typing import Iterator


class BadInputError(ValueError):
    """Input that cannot be used as it is. The message names the file, row or flag, and the fix."""


def refuse_control_characters(value: str, where: str) -> str:
    """`value`, unless it holds a control or format character (a line break, an escape, an RTL mark), which
    would end a line of a job script or a table and let the rest be read as something else; then one line
    naming `where` (the flag or file that gave it)."""
    for character in str(value):
        # zero-width (non-)joiners are letters' business in Persian words, not control
        if unicodedata.category(character) in {"Cc", "Cf", "Zl", "Zp"} and character not in "\u200c\u200d":
            raise BadInputError(f"{where}: holds the control character U+{ord(character):04X} "
                                f"({unicodedata.name(character, 'unnamed')}); remove it (rename the file if it "
                                "is in a name).")
    return value


# argparse's words for what a flag takes, said the way a user reads them.
EXPECTED = {"int": "a whole number", "float": "a number", "Path": "a path"}


def _flag(match: re.Match) -> str:
    return match["flag"].split("/")[0]  # the first spelling: --do_train of --do_train/--do-train


ARGPARSE_MESSAGES = (
    (re.compile(r"argument (?P<flag>[^:]+): invalid (?P<type>\w+) value: '(?P<value>.*)'$"),
     lambda m: f"{_flag(m)} {m['value']}: expected {EXPECTED.get(m['type'], m['type'])}"),
    (re.compile(r"argument (?P<flag>[^:]+): Truthy value expected: got (?P<value>\S*) .*$"),
     lambda m: f"{_flag(m)} {m['value']}: expected true or false"),
    (re.compile(r"argument (?P<flag>[^:]+): invalid choice: '(?P<value>.*)' \(choose from (?P<choices>.*)\)$"),
     lambda m: f"{_flag(m)} {m['value']}: expected one of {m['choices']}"),
    (re.compile(r"argument (?P<flag>[^:]+): expected (?P<count>.*) arguments?$"),
     lambda m: f"{_flag(m)} expects {m['count']} value(s)"),
    (re.compile(r"argument (?P<flag>[^:]+): (?P<rest>.*)$"), lambda m: f"{_flag(m)}: {m['rest'].rstrip('.')}"),
    (re.compile(r"unrecogni[sz]ed arguments: (?P<extra>.*)$"), lambda m: f"unknown option(s): {m['extra']}"),
    (re.compile(r"the following arguments are required: (?P<names>.*)$"), lambda m: f"give {m['names']}"),
)


def argparse_message(message: str, prog: str, known_flags: list[str] = ()) -> str:
    """argparse's complaint as one line naming the flag and what it expects, ending with where help is; an
    unknown flag that begins a known one is named with it (abbreviations are refused)."""
    for pattern, said in ARGPARSE_MESSAGES:
        match = pattern.match(message)
        if match:
            message = said(match)
            break
    if message.startswith("unknown option(s): "):
        given = [token.split("=")[0] for token in message.split(": ", 1)[1].split() if token.startswith("-")]
        meant = {flag for token in given for flag in known_flags if flag.startswith(token) and flag != token}
        # HfArgumentParser accepts --learning-rate beside --learning_rate: name each flag once, as --help does.
        meant -= {flag for flag in meant if "-" in flag[2:] and "--" + flag[2:].replace("-", "_") in meant}
        if meant:
            message += f" (did you mean {' or '.join(sorted(meant)[:3])}? flags are not abbreviated)"
    return f"{message}; {prog} --help lists the options."


def program_name() -> str:
    """The command as the user typed it, for usage lines and errors: `python -m hf_tasks.data.fetch` for a module
    run with -m, `hf-tasks fetch` (`hf_tasks.command` names its command in sys.argv[0]), else the script's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.origin == sys.argv[0]:
        return f"python -m {spec.name.removesuffix('.__main__')}"
    return os.path.basename(sys.argv[0])


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose every complaint (bad flag, bad value) is a `BadInputError`: one line, status 2,
    under `one_line_errors`, instead of the whole usage. Abbreviated flags are refused: a flag added later
    must not change what an old command line means."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("prog", program_name())  # argparse's own default says `images.py` for `python -m ...`
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise BadInputError(argparse_message(message, self.prog, sorted(self._option_string_actions)))


class TrainingInterrupted(SystemExit):
    """Training stopped on a signal with a checkpoint saved; nothing final was written.

    A `SystemExit`, so an uncaught one ends the process with `code` (128 + the signal's number, the
    shell's convention: 130 for Ctrl-C, 143 for SIGTERM) and no traceback, which requeue scripts read.
    """

    def __init__(self, signal_number: int, step: int, checkpoint_folder: str):
        super().__init__(128 + signal_number)
        self.signal_number = signal_number
        self.step = step
        self.checkpoint_folder = checkpoint_folder


class RunAlreadyFinished(SystemExit):
    """`--resume_from_checkpoint auto` (or `latest`) on a folder holding a finished run: there is nothing to
    resume, and rerunning its last step would replace the run's timings. Exits 0 (a requeue script that
    relaunches a finished job has succeeded) after `message` says so; the folder is left as it is."""

    def __init__(self, message: str):
        super().__init__(0)
        self.message = message


DEBUG_FLAG = "--debug"
#: The exit status of a command that refused its input (`one_line_errors`): running it again changes nothing.
BAD_INPUT_EXIT = 2
DEBUG_VARIABLE = "HF_TASKS_DEBUG"
# Set by the study: the file a refusing command writes its one-line error to. A launcher (torchrun, accelerate)
# exits 1 when one of its processes exits 2, so the exit status alone cannot tell the study that a
# several-process run refused its input.
REFUSAL_FILE_VARIABLE = "HF_TASKS_REFUSAL_FILE"


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Around a command line's work: an error the user caused prints as one line on stderr and exits
    with status 2 (`BAD_INPUT_EXIT`). `--debug` (taken out of sys.argv here) or HF_TASKS_DEBUG=1 shows the traceback."""
    debug = DEBUG_FLAG in sys.argv[1:] or os.environ.get(DEBUG_VARIABLE, "") not in {"", "0"}
    sys.argv[1:] = [argument for argument in sys.argv[1:] if argument != DEBUG_FLAG]
    try:
        yield
    except BadInputError as error:
        if debug:
            raise
        message = " ".join(str(error).split())  # one line, whatever the message's own line breaks
        print(f"error: {message} (add {DEBUG_FLAG} for the traceback)", file=sys.stderr)
        if os.environ.get(REFUSAL_FILE_VARIABLE):
            with open(os.environ[REFUSAL_FILE_VARIABLE], "w", encoding="utf-8") as refusal:
                refusal.write(f"error: {message}\n")
        raise SystemExit(BAD_INPUT_EXIT) from None
