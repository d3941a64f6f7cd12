"""Stop training cleanly on SIGTERM or Ctrl-C: save a checkpoint at the next step end, then stop.

Clusters send SIGTERM before they preempt or cancel a job, and Ctrl-C sends SIGINT; both normally
kill a run and lose everything since the last checkpoint. With `GracefulInterrupt` among the
Trainer's callbacks the first signal makes the Trainer save `checkpoint-<step>` and return, so the
run resumes with `--resume_from_checkpoint auto`. A second signal hands over to the handler that
was there before (Python's KeyboardInterrupt for Ctrl-C, immediate exit for SIGTERM).

transformers' own `--enable_jit_checkpoint` is not used: it watches SIGTERM only, waits a fixed
3 s on a timer, and lets each process decide alone, so under DDP one process can stop while the
others wait for it forever in the next all-reduce.

The processes agree through a separate gloo group on a CPU tensor. An all-reduce of a CUDA tensor
followed by `.item()` would make the host wait for the whole step to finish on the GPU at every
step; the Trainer itself avoids such syncs (it keeps the running loss on the device between logging
steps) so that the next batch is prepared and queued while the GPU still works.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from types import FrameType
from typing import Any, Callable, Iterable

import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)

Handler = Callable[[int, FrameType | None], Any] | int | None


class GracefulInterrupt(TrainerCallback):
    """On the first of `signals` during training: save a checkpoint at the next optimizer step end and stop.

    A repeat of the signal within `repeat_grace_seconds` counts as the same request (launchers such as
    torchrun forward a Ctrl-C that the terminal also delivered to every worker); a later one restores
    the previous handlers and re-sends the signal, which stops the process at once. Under several
    processes all of them stop at the same step as soon as any one was signalled.

    After `trainer.train()` returns, `stopped_by` names the signal (with "on another process" when a
    peer was signalled), `signal_number` is its number and `stopped_at_step` the step of the saved
    checkpoint; all are None after a run that finished normally. Handlers are installed at train
    begin and restored at train end; call `restore()` in a `finally` if training may raise.
    """

    def __init__(self, signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT), repeat_grace_seconds: float = 2.0):
        self.signals = tuple(signal.Signals(number) for number in signals)
        self.repeat_grace_seconds = repeat_grace_seconds
        self.stopped_by: str | None = None
        self.signal_number: int | None = None
        self.stopped_at_step: int | None = None
        self._previous: dict[signal.Signals, Handler] = {}
        self._received: signal.Signals | None = None
        self._received_at = 0.0
        self._group: torch.distributed.ProcessGroup | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.stopped_by = self.signal_number = self.stopped_at_step = None
        self._received = None
        if self._group is None and args.world_size > 1:
            self._group = torch.distributed.new_group(backend="gloo")  # collective: every process begins training
        if self._previous:
            return  # already installed (train called again without train end)
        if threading.current_thread() is not threading.main_thread():
            logger.warning("Training runs outside the main thread, where signal handlers cannot be set; "
                           "SIGTERM / Ctrl-C will not save a checkpoint.")
            return
        for number in self.signals:
            self._previous[number] = signal.signal(number, self._handle)

    def on_step_end(self, args, state, control, **kwargs):
        number = self._signal_on_any_process(self._received.value if self._received is not None else 0)
        if not number:
            return control
        self.signal_number = number
        self.stopped_by = signal.Signals(number).name + ("" if self._received is not None else " on another process")
        self.stopped_at_step = state.global_step
        control.should_training_stop = True
        # At an epoch's last step the Trainer evaluates and saves at epoch end right after (see
        # on_epoch_end); saving there, after that evaluation, is what an uninterrupted run's
        # checkpoint would hold (best metric, plateau schedule), so a resumed run continues identically.
        if not _completes_epoch(state):
            control.should_save = True
        logger.warning(
            "%s: saving checkpoint-%d in %s and stopping. Resume with --resume_from_checkpoint auto.",
            self.stopped_by, state.global_step, args.output_dir,
        )
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped_at_step is None:
            return control
        if _completes_epoch(state):
            control.should_save = True
        else:
            # Stopped mid-epoch: the checkpoint is saved; an epoch-end evaluation of a partial epoch
            # (and a second save after it) would be a step the uninterrupted run never takes.
            control.should_evaluate = False
            control.should_save = False
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        """Put back the signal handlers that were there before training (idempotent)."""
        previous, self._previous = self._previous, {}
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)

    def _handle(self, number: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if self._received is None:
            self._received, self._received_at = signal.Signals(number), now
            logger.warning("%s received: training stops after this step, with a checkpoint. "
                           "Send it again to stop at once.", signal.Signals(number).name)
            return
        if now - self._received_at < self.repeat_grace_seconds:
            return
        self.restore()
        signal.raise_signal(number)

    def _signal_on_any_process(self, number: int) -> int:
        """The (highest) signal number any process received, 0 for none: all must stop at the same
        step or the others hang, and all exit with the same status."""
        if self._group is None:
            return number
        received = torch.tensor([number])
        torch.distributed.all_reduce(received, op=torch.distributed.ReduceOp.MAX, group=self._group)
        return int(received.item())


def _completes_epoch(state) -> bool:
    """True at the last optimizer step of an epoch (the Trainer sets epoch to a whole number there)."""
    return state.epoch is not None and float(state.epoch).is_integer()
