"""The run object: what `hf_tasks.args.parse` gives a recipe and the recipe hands to the runner.

It holds the parsed argument groups, looked up by type (`state[DataArguments]`, a subclass found by its
base: `state[LoraArguments]` is the regime group), and the run's state, which no argument group
carries: the bad-row log every adapter reports to (`bad_rows`, read for skipped_rows.json), the data
source in words (for the run log) and the output folder. Iterating gives the groups in the order they
were parsed. What the task needs from the runner (Trainer settings, files for the run folder) the
runner asks the task itself (`hf_tasks.tasks.base.Task`).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar

import transformers

from hf_tasks.config_files import PATH_ARGUMENTS, WRITES
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.secrets import redact_mapping

Group = TypeVar("Group")

# Fields about one launch rather than the experiment: a config.yaml rerun in a fresh folder must not
# look for the checkpoint the original run resumed from.
LAUNCH_FIELDS = frozenset({"resume_from_checkpoint", "overwrite_output_dir"})


class RunState:
    """The argument groups of one run and its state (see the module docstring)."""

    def __init__(self, groups: Sequence[Any], *, bad_rows: BadRows | None = None,
                 data_source: str = "given by the recipe"):
        self.groups = tuple(groups)
        self.bad_rows = bad_rows if bad_rows is not None else BadRows(False)
        self.data_source = data_source
        # Set by a recipe that may generate its demo data: whether the folder held the user's own data.
        self.data_origin: str | None = None
        # Flags no argument group knows, kept in order when the parser was told to forward them (the study's).
        self.forwarded: list[str] = []

    def __iter__(self) -> Iterator[Any]:
        return iter(self.groups)

    def get(self, kind: type[Group]) -> Group | None:
        """The group that is a `kind` (the first, if several are), or None."""
        return next((group for group in self.groups if isinstance(group, kind)), None)

    def __getitem__(self, kind: type[Group]) -> Group:
        group = self.get(kind)
        if group is None:
            raise KeyError(f"this run parsed no {kind.__name__} (its groups: "
                           f"{', '.join(type(group).__name__ for group in self.groups)})")
        return group

    def data_description(self) -> str:
        """The data source in words, with where a folder's data came from when the recipe decided it."""
        return f"{self.data_source} ({self.data_origin})" if self.data_origin else self.data_source

    @property
    def training_args(self) -> transformers.TrainingArguments:
        return self[transformers.TrainingArguments]

    @property
    def output_dir(self) -> Path:
        return Path(self.training_args.output_dir)

    def config(self) -> dict[str, Any]:
        """The run's arguments as config.yaml stores them (`resolved_config`)."""
        return resolved_config(*self.groups)


def _absolute(name: str, value: Any) -> Any:
    """A path argument as an absolute path, so that a config holding it works from any directory;
    a value that names no local path (a hub id, a timm model name) stays as it is."""
    kind = PATH_ARGUMENTS.get(name)
    if kind is None or not value:
        return value
    if isinstance(value, list):
        return [_absolute(name, item) for item in value]
    if not isinstance(value, str) or (kind != WRITES and not Path(value).exists()):
        return value
    return os.path.abspath(value)


def resolved_config(*instances: Any) -> dict[str, Any]:
    """All argument values of the run as one flat, YAML-safe mapping, without secrets (`redact_mapping`) and
    without the fields that belong to one launch (`resume_from_checkpoint`). Local paths are absolute."""
    resolved: dict[str, Any] = {}
    for instance in instances:
        values = instance.to_dict() if hasattr(instance, "to_dict") else dataclasses.asdict(instance)
        values.update(getattr(instance, "as_given", {}))  # what followed the hardware, as the user gave it
        for name, value in values.items():
            if name in LAUNCH_FIELDS or name.startswith("_"):
                continue
            value = _absolute(name, value)
            resolved[name] = value if isinstance(value, (str, int, float, bool, type(None), list, dict)) else str(value)
    return redact_mapping(resolved)
