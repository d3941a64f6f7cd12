"""A classifier config's label entries, from the ordered class names a dataset adapter gives."""

from __future__ import annotations

from typing import Any, Sequence


def label_maps(label_names: Sequence[str]) -> dict[str, Any]:
    """`id2label`, `label2id` and `num_labels` for a model config, from the ordered class names."""
    names = [str(name) for name in label_names]
    if len(set(names)) != len(names):
        raise ValueError(f"Label names must be unique, got {names}.")
    return {
        "id2label": dict(enumerate(names)),
        "label2id": {name: index for index, name in enumerate(names)},
        "num_labels": len(names),
    }
