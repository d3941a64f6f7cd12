"""How a dataset may spell its classes: by name, through a `--label_map` renaming, or by a short form.

Adapters of labelled tables (FarsTail, Constraint) turn the label text of each row into a class id
here, and ask here what to suggest when a value is not a class: a `--label_map` entry only where the
class is certain (the value is a class name in other letter case), a placeholder the user must fill
everywhere else, so that copying the suggestion can never flip labels.
"""

from __future__ import annotations

import json
from typing import Iterable, Sequence

from hf_tasks.errors import BadInputError

# Unknown values a --label_map suggestion lists before it stops.
VALUES_SUGGESTED = 5


def parse_label_map(value: str | dict | None) -> dict[str, str]:
    """`--label_map` as a dict of strings, from JSON text or a YAML mapping."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as error:
            raise BadInputError(
                f"--label_map {value!r} is not JSON ({error}); write it like '{{\"FAKE\": \"fake\", \"0\": \"real\"}}'."
            ) from None
    if not isinstance(value, dict):
        raise BadInputError(f"--label_map must map label values to class names, got {value!r}.")
    return {str(key): str(name) for key, name in value.items()}


class LabelSpellings:
    """Label text → class id for classes `class_names` (in id order).

    `label_map` renames values first (`{"FAKE": "fake"}`). With `ignore_case`, "Entailment" spells
    "entailment"; with `initials`, a class may be spelled by its first letter when the classes' first
    letters differ (FarsTail's e, c, n).
    """

    def __init__(self, class_names: Sequence[str], *, label_map: dict[str, str] | None = None,
                 ignore_case: bool = False, initials: bool = False):
        self.class_names = [str(name) for name in class_names]
        self.label_map = dict(label_map or {})
        self.ignore_case = ignore_case
        self.ids = {self._key(name): index for index, name in enumerate(self.class_names)}
        first_letters = [self._key(name[:1]) for name in self.class_names]
        if initials and len(set(first_letters)) == len(first_letters):
            self.ids.update({letter: index for index, letter in enumerate(first_letters)})

    def _key(self, value: str) -> str:
        return value.lower() if self.ignore_case else value

    def id_of(self, value: str) -> int | None:
        """The class id `value` spells (after `label_map`), or None."""
        value = value.strip()
        return self.ids.get(self._key(self.label_map.get(value, value)))

    def spellings(self) -> str:
        """Every accepted spelling, for messages: "c, contradiction, e, ..."."""
        return ", ".join(sorted(self.ids))

    def label_map_suggestion(self, unknown: Iterable[str]) -> str:
        """A `--label_map` value for `unknown` label values, as JSON: a value that is a class name in
        other letter case maps to that class; any other value to a placeholder such as "<real|fake>"."""
        placeholder = f"<{'|'.join(self.class_names)}>"
        by_lower_case = {name.lower(): name for name in self.class_names}
        suggestion = {}
        for value in list(dict.fromkeys(unknown))[:VALUES_SUGGESTED]:
            suggestion[value] = by_lower_case.get(value.strip().lower(), placeholder)
        return json.dumps(suggestion, ensure_ascii=False)
