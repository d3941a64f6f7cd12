"""What a user caused, said in one line: bad data, bad flags, a folder the run may not write into.

Recipes let these propagate; the command line shows their message, not a traceback.
"""

from __future__ import annotations


class BadInputError(ValueError):
    """Input that cannot be used as it is. The message names the file, row or flag, and the fix."""


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
