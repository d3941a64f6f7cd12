"""What a user caused, said in one line: bad data, bad flags, a folder the run may not write into.

Recipes let these propagate; `one_line_errors` shows the command line their message, not a traceback.
"""

from __future__ import annotations

import contextlib
import os
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
DEBUG_VARIABLE = "HF_TASKS_DEBUG"


@contextlib.contextmanager
def one_line_errors() -> Iterator[None]:
    """Around a command line's work: an error the user caused prints as one line on stderr and exits
    with status 2. `--debug` (taken out of sys.argv here) or HF_TASKS_DEBUG=1 shows the traceback."""
    debug = DEBUG_FLAG in sys.argv[1:] or os.environ.get(DEBUG_VARIABLE, "") not in {"", "0"}
    sys.argv[1:] = [argument for argument in sys.argv[1:] if argument != DEBUG_FLAG]
    try:
        yield
    except BadInputError as error:
        if debug:
            raise
        message = " ".join(str(error).split())  # one line, whatever the message's own line breaks
        print(f"error: {message} (add {DEBUG_FLAG} for the traceback)", file=sys.stderr)
        raise SystemExit(2) from None
