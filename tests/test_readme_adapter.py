"""The README's worked example of a new dataset adapter runs as printed: it loads good rows with a
ClassLabel, and a bad row stops the run naming the file and line, or is skipped and listed."""

from __future__ import annotations

import json
import re
import types

import pytest

from hf_tasks.args import DataArguments
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.errors import BadInputError
from tests.conftest import REPO


def readme_adapter() -> types.ModuleType:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### A new dataset in a known format"):]
    source = next(block for block in re.findall(r"```python\n(.*?)```", section, re.S) if "def load(" in block)
    module = types.ModuleType("readme_adapter")
    exec(compile(source, "README.md", "exec"), module.__dict__)
    return module


def write_lines(path, records):
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def test_the_readme_adapter_loads_checks_and_skips(tmp_path):
    adapter = readme_adapter()
    train = write_lines(tmp_path / "train.jsonl", [{"s1": "a cat sits", "s2": "a cat", "gold": 0},
                                                    {"s1": "p", "s2": "q", "gold": 7},
                                                    {"s1": "x", "s2": "y", "gold": 1}])
    with pytest.raises(BadInputError, match=r"train.jsonl: gold 7 is not 0 or 1 \(line 2\)"):
        adapter.load(DataArguments(train_file=str(train)), bad_rows=BadRows(False))
    skipping = BadRows(True)
    data = adapter.load(DataArguments(train_file=str(train)), bad_rows=skipping)
    assert data["train"]["label"] == [0, 1]
    assert data["train"].features["label"].names == ["entailment", "contradiction"]
    assert [row["line"] for row in skipping.skipped] == [2]
