"""FarsTail-format pair loading, validation, features and hard-subset scoring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datasets import ClassLabel, Dataset, Features, Value
from transformers import AutoTokenizer, TrainingArguments

from hf_tasks.options import DataArguments
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.errors import BadInputError
from hf_tasks.data import farstail
from hf_tasks.data.farstail import FarsTailArguments
from hf_tasks.data.tables import read_table
from hf_tasks.tasks.pairs import PairArguments, PairClassificationTask

TOKENIZER = "hf_tasks/samples/tiny-bert-farstail"
PREMISE = "علی که در شهر تهران به دنیا آمده است، سال‌ها به عنوان پزشک کار کرده است."


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(TOKENIZER)


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def task_for(tokenizer, tmp_path, bad_rows: BadRows | None = None, **data) -> PairClassificationTask:
    """The task on the FarsTail adapter's splits of `data`, as the recipe builds it; the adapter
    validates (and raises) here, so tests of bad input build inside `pytest.raises`."""
    data_args = DataArguments(**data)
    splits = farstail.load(data_args, FarsTailArguments(), bad_rows=bad_rows or BadRows(False))
    return PairClassificationTask(splits, tokenizer, data_args, PairArguments(), subset_columns=farstail.HARD_COLUMNS)


def training_args(tmp_path) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")


def test_quoted_tabs_and_newlines_stay_inside_their_field(tmp_path):
    path = write(tmp_path / "train.csv", "\ufeffpremise\thypothesis\tlabel\n"
                 f'"{PREMISE}\tبا یک تب"\t"علی پزشک است.\nدو خط"\te\n'
                 f"{PREMISE}\tعلی معلم است.\tc\n")
    table = read_table(path)
    assert table.columns == ["premise", "hypothesis", "label"]
    assert list(table.rows[0].values.values()) == [f"{PREMISE}\tبا یک تب", "علی پزشک است.\nدو خط", "e"]
    assert [row.line for row in table] == [2, 4]  # the lines each record starts on
    assert [row.row for row in table] == [1, 2]


def test_non_utf8_tsv_names_the_line_and_the_byte(tmp_path):
    path = tmp_path / "train.tsv"
    # Line 3 holds a cp1252 right quote (0x92), the 4th byte of the line.
    path.write_bytes("premise\thypothesis\tlabel\nعلی\tپزشک\te\n".encode("utf-8") + b"caf\x92e\tfine\tc\n")
    with pytest.raises(BadInputError, match=r"train.tsv: not UTF-8 text \(byte 0x92 on line 3, byte 4 of the line"):
        task_for(None, tmp_path, train_file=str(path))


def test_features_labels_truncation_and_padding(tmp_path, tokenizer):
    train = write(tmp_path / "train.tsv", "premise\thypothesis\tlabel\n" + "".join(
        f"{PREMISE}\tعلی پزشک است.\t{label}\n" for label in ("e", "c", "n", "E", "neutral")))
    task = task_for(tokenizer, tmp_path, train_file=str(train), max_seq_length=12)
    features = task.features(training_args(tmp_path))
    assert task.features(training_args(tmp_path)) is features  # built once
    train_features = features["train"]
    assert train_features["label"] == [0, 1, 2, 0, 2]
    assert set(train_features.column_names) == {"input_ids", "token_type_ids", "attention_mask", "label"}
    assert all(len(ids) == 12 for ids in train_features["input_ids"])
    # longest_first: the long premise gives up tokens, the short hypothesis keeps all of its own.
    hypothesis_tokens = tokenizer("علی پزشک است.", add_special_tokens=False)["input_ids"]
    first = train_features[0]
    assert first["input_ids"][-len(hypothesis_tokens) - 1:-1] == hypothesis_tokens
    batch = task.data_collator([train_features[0],
                                {**train_features[1], "input_ids": train_features[1]["input_ids"][:5],
                                 "token_type_ids": [0] * 5, "attention_mask": [1] * 5}])
    assert batch["input_ids"].shape == (2, 12) and batch["labels"].tolist() == [0, 1]


def test_unknown_labels_are_listed_with_their_lines(tmp_path, tokenizer):
    train = write(tmp_path / "train.tsv", "premise\thypothesis\tlabel\n" + "".join(
        f"{PREMISE}\tعلی پزشک است.\t{label}\n" for label in ("e", "x", "e", "entail", "x")))
    with pytest.raises(BadInputError, match=r"train.tsv: unknown label 'x' \(lines 3, 6\); unknown label 'entail' "
                                            r"\(line 5\)"):
        task_for(tokenizer, tmp_path, train_file=str(train))


def test_missing_columns_and_empty_texts(tmp_path, tokenizer):
    bad_header = write(tmp_path / "a.tsv", f"sentence1\tsentence2\tlabel\n{PREMISE}\tعلی\te\n")
    with pytest.raises(BadInputError, match=r"no column 'premise', 'hypothesis'.*--premise_column"):
        task_for(tokenizer, tmp_path, train_file=str(bad_header))
    empty = write(tmp_path / "b.tsv", f"premise\thypothesis\tlabel\n{PREMISE}\t \te\n{PREMISE}\tعلی\tn\n")
    with pytest.raises(BadInputError, match=r"empty hypothesis \(line 2\).*--skip_bad_rows"):
        task_for(tokenizer, tmp_path, train_file=str(empty))
    log = BadRows(True)
    skipping = task_for(tokenizer, tmp_path, log, train_file=str(empty))
    assert len(skipping.features(training_args(tmp_path))["train"]) == 1
    assert log.skipped == [{"file": str(empty), "line": 2, "reason": "empty hypothesis"}]
    ragged = write(tmp_path / "c.tsv", f"premise\thypothesis\tlabel\n{PREMISE}\tعلی\te\textra\n")
    with pytest.raises(BadInputError, match=r"line 2 \(row 1\) has 4 fields but the header has 3"):
        task_for(tokenizer, tmp_path, train_file=str(ragged))


def test_hard_subset_accuracies_on_the_test_split_only(tmp_path, tokenizer):
    rows = [("e", "1", "0"), ("c", "1", "1"), ("n", "0", "0"), ("e", "0", "1")]
    test = write(tmp_path / "test.tsv", "premise\thypothesis\tlabel\thard(hypothesis)\thard(overlap)\n" + "".join(
        f"{PREMISE}\tعلی پزشک است.\t{label}\t{hyp}\t{overlap}\n" for label, hyp, overlap in rows))
    validation = write(tmp_path / "validation.tsv", "premise\thypothesis\tlabel\n" + f"{PREMISE}\tعلی\tn\n" * 2)
    task = task_for(tokenizer, tmp_path, validation_file=str(validation), test_file=str(test))
    features = task.features(training_args(tmp_path))
    # Predicted: entailment, entailment, neutral, contradiction → hard(hypothesis) rows 0,1: 1 of 2 right;
    # hard(overlap) rows 1,3: none right.
    logits = np.eye(3)[[0, 0, 2, 1]] * 5
    metrics = task.score("test", logits, np.asarray(features["test"]["label"]))
    assert metrics["accuracy"] == 0.5
    assert metrics["accuracy_hard_hypothesis"] == 0.5 and metrics["accuracy_hard_overlap"] == 0.0
    eval_metrics = task.score("validation", np.eye(3)[[2, 2]], np.asarray(features["validation"]["label"]))
    assert eval_metrics["accuracy"] == 1.0 and not any(key.startswith("accuracy_hard") for key in eval_metrics)


def test_unlabelled_test_rows_are_allowed_but_not_in_training(tmp_path, tokenizer):
    unlabelled = "premise\thypothesis\tlabel\n" + f"{PREMISE}\tعلی\t\n{PREMISE}\tعلی\tc\n"
    test = write(tmp_path / "test.tsv", unlabelled)
    features = task_for(tokenizer, tmp_path, test_file=str(test)).features(training_args(tmp_path))
    assert features["test"]["label"] == [-100, 1]
    train = write(tmp_path / "train.tsv", unlabelled)
    with pytest.raises(BadInputError,
                       match=r"train.tsv: no label \(line 2\).*only the test split may leave labels empty"):
        task_for(tokenizer, tmp_path, train_file=str(train))


def test_dataset_folder_with_class_labels(tmp_path, tokenizer):
    features = Features({"premise": Value("string"), "hypothesis": Value("string"),
                         "label": ClassLabel(names=["c", "e", "n"])})
    folder = tmp_path / "farstail_hub"
    folder.mkdir()
    Dataset.from_dict({"premise": [PREMISE] * 3, "hypothesis": ["علی"] * 3, "label": [0, 1, 2]},
                      features=features).to_parquet(folder / "train.parquet")
    task = task_for(tokenizer, tmp_path, dataset_name=str(folder), dataset_cache_dir=str(tmp_path / "cache"))
    built = task.features(training_args(tmp_path))
    assert built["train"]["label"] == [1, 0, 2]  # mapped by name onto entailment, contradiction, neutral


def test_tokenised_pairs_are_cached_by_content_tokenizer_and_length(tmp_path, tokenizer, empty_preprocessing_cache):
    train = write(tmp_path / "train.tsv", "premise\thypothesis\tlabel\n" + "".join(
        f"{PREMISE}\tعلی پزشک است.\t{label}\n" for label in ("e", "c", "n")))

    def cache_files(**data):
        task = task_for(tokenizer, tmp_path, train_file=str(train), **data)
        return task.features(training_args(tmp_path))["train"].cache_files

    first = cache_files(max_seq_length=12)
    # The first build tokenised: its cache file is the only one, in a folder that was empty before it.
    assert [Path(file["filename"]) for file in first] == list(empty_preprocessing_cache.glob("*.arrow"))
    assert cache_files(max_seq_length=12) == first
    assert cache_files(max_seq_length=16) != first
    assert cache_files(max_seq_length=12, overwrite_cache=True) != first


def test_the_adapter_gives_standard_columns_and_hard_subsets_only_where_the_file_has_them():
    data_args = DataArguments(train_file="hf_tasks/samples/farstail/train.tsv",
                              test_file="hf_tasks/samples/farstail/test.tsv")
    data = farstail.load(data_args, FarsTailArguments(), bad_rows=BadRows(False))
    assert data["train"].column_names == ["premise", "hypothesis", "label", "row", "line"]
    assert data["test"].column_names == ["premise", "hypothesis", "label", "row", "line", *farstail.HARD_COLUMNS]
    assert data["train"].features["label"].names == ["entailment", "contradiction", "neutral"]
    assert data["train"][0]["row"] == 1 and data["train"][0]["line"] == 2


def test_limits_apply_after_every_row_is_validated(tmp_path):
    train = write(tmp_path / "train.tsv", "premise\thypothesis\tlabel\n" + "".join(
        f"{PREMISE}\tعلی پزشک است.\t{label}\n" for label in ("e", "c", "x")))
    with pytest.raises(BadInputError, match=r"unknown label 'x' \(line 4\)"):
        farstail.load(DataArguments(train_file=str(train), max_train_samples=1), FarsTailArguments(),
                      bad_rows=BadRows(False))
    skipping = BadRows(True)
    data = farstail.load(DataArguments(train_file=str(train), max_train_samples=1), FarsTailArguments(),
                         bad_rows=skipping)
    assert data["train"]["label"] == [0]
    assert [row["line"] for row in skipping.skipped] == [4]
