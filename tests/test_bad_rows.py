"""The one bad-row policy: a source whose every row is skipped stops, in every adapter, instead of
loading an empty split."""

from __future__ import annotations

import pytest

from hf_tasks.options import DataArguments
from hf_tasks.data import constraint, farstail
from hf_tasks.data.bad_rows import BadRows, require_usable
from hf_tasks.errors import BadInputError


def test_nothing_usable_names_the_source_and_why():
    require_usable("a.tsv", usable=1, read=3)
    with pytest.raises(BadInputError, match=r"^a.tsv: no usable rows \(all 3 skipped\)\.$"):
        require_usable("a.tsv", usable=0, read=3)
    with pytest.raises(BadInputError, match=r"^b.csv: no usable clips \(it has none\); add some\.$"):
        require_usable("b.csv", usable=0, read=0, what="clips", fix="add some")


TABLES = {
    "farstail": ("train.tsv", "premise\thypothesis\tlabel\na\tb\tx\nc\td\ty\n",
                 lambda data_args, log: farstail.load(data_args, farstail.FarsTailArguments(), bad_rows=log)),
    "constraint": ("train.csv", "id,tweet,label\n1,a,x\n2,b,y\n",
                   lambda data_args, log: constraint.load(data_args, constraint.ConstraintArguments(), bad_rows=log)),
}


@pytest.mark.parametrize("adapter", sorted(TABLES))
def test_a_table_whose_every_row_is_skipped_stops(adapter, tmp_path):
    name, text, load = TABLES[adapter]
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    log = BadRows(True)
    with pytest.raises(BadInputError, match=r"no usable rows \(all 2 skipped\)"):
        load(DataArguments(train_file=str(path)), log)
    assert len(log.skipped) == 2


def test_a_repeated_example_id_in_a_classification_split_is_a_bad_row_at_load_time(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("id,tweet,label\n7,a,real\n8,b,fake\n7,c,real\n", encoding="utf-8")
    data_args = DataArguments(train_file=str(path))
    with pytest.raises(BadInputError, match=r"train.csv: .*id '7' repeats row 1's \(row 3\)"):
        constraint.load(data_args, constraint.ConstraintArguments(), bad_rows=BadRows(False))
    log = BadRows(True)
    loaded = constraint.load(data_args, constraint.ConstraintArguments(), bad_rows=log)
    assert loaded["train"]["id"] == ["7", "8"] and len(log.skipped) == 1
