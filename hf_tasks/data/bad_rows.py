"""The one bad-row policy: validate, then stop naming the file, rows and fix, or skip on request.

Every adapter reports what is wrong with its rows (table lines, questions, clips, images) to a
`BadRows`; `settle` either raises one `BadInputError` that groups the problems by reason, or, with
`--skip_bad_rows`, records them for the run folder's `skipped_rows.json` and says on the console how
many were left out. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Iterable

from hf_tasks.errors import BadInputError

logger = logging.getLogger(__name__)

# Positions a message lists per reason before "and N more".
POSITIONS_SHOWN = 8
REASONS_SHOWN = 5
SKIP_HINT = "or pass --skip_bad_rows to skip such rows (they are listed in skipped_rows.json)"


@dataclass
class RowProblem:
    """One unusable row: where it is, in the unit the source counts in, and why."""

    unit: str  # "line", "row", "question id", "clip", "image"
    position: Any  # the line number, id or file name
    reason: str
    #: Extra keys for skipped_rows.json (e.g. {"id": "t-17"}).
    details: dict[str, Any] = field(default_factory=dict)

    def record(self, source: str) -> dict[str, Any]:
        return {"file": source, self.unit.replace(" ", "_"): self.position, **self.details, "reason": self.reason}


def _positions(unit: str, positions: list[Any]) -> str:
    shown = ", ".join(str(position) if isinstance(position, int) else repr(position)
                      for position in positions[:POSITIONS_SHOWN])
    more = f" and {len(positions) - POSITIONS_SHOWN} more" if len(positions) > POSITIONS_SHOWN else ""
    plural = "s" if len(positions) > 1 and not unit.endswith("s") else ""
    return f"{unit}{plural} {shown}{more}"


def describe(problems: Iterable[RowProblem]) -> str:
    """Problems grouped by reason: "unknown label 'x' (lines 3, 6); empty premise (line 9)"."""
    grouped: dict[tuple[str, str], list[Any]] = {}
    for problem in problems:
        grouped.setdefault((problem.reason, problem.unit), []).append(problem.position)
    parts = [f"{reason} ({_positions(unit, positions)})" for (reason, unit), positions in grouped.items()]
    more = f"; and {len(parts) - REASONS_SHOWN} more kinds of problem" if len(parts) > REASONS_SHOWN else ""
    return "; ".join(parts[:REASONS_SHOWN]) + more


def require_usable(source: str, usable: int, read: int, what: str = "rows", fix: str = "") -> None:
    """Stop when nothing of `source` is left to use: every one of the `read` entries was skipped, or
    there were none to begin with."""
    if usable:
        return
    why = f"all {read} skipped" if read else "it has none"
    raise BadInputError(f"{source}: no usable {what} ({why}){'; ' + fix if fix else ''}.")


class BadRows:
    """What one run's data intake skipped, and the decision to skip or stop (`--skip_bad_rows`)."""

    def __init__(self, skip: bool):
        self.skip = skip
        self.skipped: list[dict[str, Any]] = []

    def settle(self, source: str, problems: list[RowProblem], fix: str) -> None:
        """Stop on `problems` of `source` with one message naming them and `fix`, or record them as skipped.

        `fix` says how to repair the data ("fix the label or set the classes with --class_names").
        """
        if not problems:
            return
        if not self.skip:
            raise BadInputError(f"{source}: {describe(problems)}. {fix[:1].upper()}{fix[1:]}, {SKIP_HINT}.")
        self.skipped += [problem.record(source) for problem in problems]
        logger.warning("Skipped %d unusable %s of %s: %s (listed in skipped_rows.json).", len(problems),
                       "entries" if len(problems) > 1 else "entry", source, describe(problems))
