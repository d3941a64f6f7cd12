"""Tweet classification task: reading CSVs, bad input, normalised features, collation."""

import csv
import dataclasses
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, TrainingArguments

from hf_tasks.options import DataArguments
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.errors import BadInputError
from hf_tasks.data import constraint
from hf_tasks.data.constraint import ConstraintArguments
from hf_tasks.data.labels import LabelSpellings
from hf_tasks.data.tables import read_table
from hf_tasks.tasks.text import TextArguments, TextClassificationTask
from hf_tasks.text.tweets import main as show_tweet
from tests.conftest import REPO

TOKENIZER = REPO / "hf_tasks/samples/tiny-bert-en"
SAMPLE = REPO / "hf_tasks/samples/constraint"


def write_csv(path: Path, rows: list[dict], header=("id", "tweet", "label")) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(header))
        writer.writeheader()
        writer.writerows(rows)
    return path


def values(path, required=()) -> list[dict]:
    return [row.values for row in read_table(path, required)]


def task_on(data_args, bad_rows: BadRows | None = None, **options) -> TextClassificationTask:
    """The task on the Constraint adapter's splits, as the recipe builds it (the adapter raises on bad rows,
    or skips them into `bad_rows`)."""
    data_options = {key: options.pop(key) for key in list(options)
                    if key in {field.name for field in dataclasses.fields(ConstraintArguments)}}
    constraint_args = ConstraintArguments(**data_options)
    return TextClassificationTask(constraint.load(data_args, constraint_args, bad_rows=bad_rows or BadRows(False)),
                                  AutoTokenizer.from_pretrained(TOKENIZER),
                                  data_args, TextArguments(**options), text_column=constraint_args.text_column,
                                  display_columns=constraint_args.kept_columns)


def make_task(tmp_path, rows=None, *, test_rows=None, bad_rows=None, max_seq_length=None, **text_options):
    train = write_csv(tmp_path / "train.csv", rows or [
        {"id": "1", "tweet": "Masks work 😷\nsee https://t.co/abc", "label": "real"},
        {"id": "2", "tweet": "@someone 5G spreads the virus!!! &amp; more", "label": "fake"},
    ])
    test = write_csv(tmp_path / "test.csv", test_rows, header=list(test_rows[0])) if test_rows else None
    data_args = DataArguments(train_file=str(train), validation_file=str(train),
                              test_file=str(test) if test else None, max_seq_length=max_seq_length)
    return task_on(data_args, bad_rows, **text_options)


def training_args(tmp_path):
    return TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")


def test_csv_fields_keep_newlines_commas_and_quotes(tmp_path):
    rows = [{"id": "7", "tweet": 'line one,\n"quoted"\n\nline three', "label": "real"}]
    assert values(write_csv(tmp_path / "a.csv", rows), ["tweet"]) == rows


def test_sample_files_read_back_with_both_labels():
    rows = values(SAMPLE / "train.csv", ["id", "tweet", "label"])
    assert len(rows) == 480 and {row["label"] for row in rows} == {"real", "fake"}
    assert any("\n" in row["tweet"] for row in rows)


def test_non_utf8_file_names_the_line_and_the_fix(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("id,tweet,label\n1,fine,real\n2,caf\xe9 rumours,fake\n".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"latin.csv: not UTF-8 text \(byte 0xe9 on line 3.*iconv"):
        values(path)


def test_missing_column_lists_the_header_and_the_flag(tmp_path):
    path = write_csv(tmp_path / "t.csv", [{"id": "1", "text": "hi", "label": "real"}], header=("id", "text", "label"))
    with pytest.raises(BadInputError, match=r"t.csv: no column 'tweet' \(the header has \['id', 'text', 'label'\]\).*"
                                            r"--text_column"):
        constraint.load(DataArguments(train_file=str(path)), ConstraintArguments(), bad_rows=BadRows(False))


def test_row_with_too_many_fields_is_reported(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,tweet,label\n1,ok,real\n2,unquoted, comma,fake\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"line 3 \(row 2\) has 4 fields but the header has 3"):
        values(path)


def test_labels_other_than_real_fake_are_listed_with_rows_and_a_label_map_fix(tmp_path):
    rows = [{"id": str(i), "tweet": f"tweet {i}", "label": label}
            for i, label in enumerate(["real", "FAKE", "fake", "true", "FAKE"], start=1)]
    with pytest.raises(BadInputError) as error:
        make_task(tmp_path, rows)
    message = str(error.value)
    assert "train.csv" in message and "'FAKE' (rows 2, 5)" in message and "'true' (row 4)" in message
    assert "--label_map" in message and "--skip_bad_rows" in message

    mapped = make_task(tmp_path, rows, label_map='{"FAKE": "fake", "true": "real"}')
    assert mapped.features(training_args(tmp_path))["train"]["labels"] == [0, 1, 1, 0, 1]


def test_empty_tweets_are_refused_or_skipped_and_recorded(tmp_path):
    rows = [{"id": "1", "tweet": "ok", "label": "real"}, {"id": "2", "tweet": " \n ", "label": "fake"},
            {"id": "3", "tweet": "fine", "label": "fake"}]
    with pytest.raises(BadInputError, match=r"empty 'tweet' text \(row 2\)\."):
        make_task(tmp_path, rows)
    log = BadRows(True)
    task = make_task(tmp_path, rows, bad_rows=log)
    features = task.features(training_args(tmp_path))
    assert len(features["train"]) == 2
    skipped = log.skipped
    assert {(row["row"], row["id"]) for row in skipped} == {(2, "2")}
    assert "empty" in skipped[0]["reason"]


def test_features_are_normalised_tokenised_and_aligned_with_the_raw_rows(tmp_path):
    task = make_task(tmp_path)
    features = task.features(training_args(tmp_path))
    text = task.tokenizer.decode(features["train"][0]["input_ids"], skip_special_tokens=True)
    assert "twitterurl" in text and "face_with_medical_mask" in text.replace(" ", "")
    assert features["train"]["labels"] == [0, 1]
    assert task.raw["validation"]["tweet"][0] == "Masks work 😷\nsee https://t.co/abc"
    assert task.display_columns == ("id", "tweet")


def test_normalisation_steps_follow_the_arguments(tmp_path):
    task = make_task(tmp_path, replace_urls=False, demojize=False)
    assert task.normalize("😷 https://t.co/x @a") == "😷 https://t.co/x twitteruser"


def test_long_texts_are_truncated_to_max_seq_length(tmp_path):
    rows = [{"id": "1", "tweet": "masks work " * 400, "label": "real"}, {"id": "2", "tweet": "5G", "label": "fake"}]
    features = make_task(tmp_path, rows, max_seq_length=32).features(training_args(tmp_path))
    assert [len(ids) for ids in features["train"]["input_ids"]][0] == 32


def test_test_file_without_labels_is_predicted_without_scoring(tmp_path):
    task = make_task(tmp_path, test_rows=[{"id": "9", "tweet": "no label here"}])
    features = task.features(training_args(tmp_path))
    assert "labels" not in features["test"].column_names
    assert task.score("test", torch.zeros(1, 2).numpy(), None) == {}


def test_collator_pads_to_the_longest_row_and_shapes_sigmoid_labels(tmp_path):
    features = make_task(tmp_path).features(training_args(tmp_path))["train"]
    rows = [features[0], features[1]]
    batch = make_task(tmp_path).data_collator(rows)
    assert batch["input_ids"].shape == (2, max(len(row["input_ids"]) for row in rows))
    assert batch["labels"].dtype == torch.long and batch["labels"].tolist() == [0, 1]
    sigmoid = make_task(tmp_path, binary_sigmoid=True)
    assert sigmoid.num_labels == 1
    labels = sigmoid.data_collator(rows)["labels"]
    assert labels.dtype == torch.float32 and labels.tolist() == [[0.0], [1.0]]


def test_label_map_accepts_a_yaml_mapping_and_rejects_bad_json():
    assert ConstraintArguments(label_map={"0": "real", 1: "fake"}).label_map == {"0": "real", "1": "fake"}
    with pytest.raises(BadInputError, match="--label_map"):
        ConstraintArguments(label_map="FAKE=fake")


def test_inspection_command_prints_a_row_of_a_file(capsys):
    show_tweet(["--train_file", str(SAMPLE / "train.csv"), "--row", "5"])
    printed = capsys.readouterr().out
    rows = values(SAMPLE / "train.csv")
    assert f"row 5: id='5', label={rows[4]['label']!r}" in printed
    assert "twitterurl" in printed.splitlines()[-1] and "\\n" not in printed.splitlines()[-1]


def test_blank_lines_between_records_do_not_shift_row_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("id,tweet,label\n1,fine,real\n\n2,odd,maybe\n", encoding="utf-8")
    assert [row["id"] for row in values(path)] == ["1", "2"]
    with pytest.raises(BadInputError, match=r"'maybe' \(row 2\)"):
        task_on(DataArguments(train_file=str(path)))


def test_label_map_hint_maps_only_what_is_certain_and_leaves_a_placeholder_for_the_rest(tmp_path):
    rows = [{"id": str(i), "tweet": f"tweet {i}", "label": label}
            for i, label in enumerate(["FAKE", "Real", "maybe", "real"], start=1)]
    with pytest.raises(BadInputError) as error:
        make_task(tmp_path, rows)
    # Copying the hint must never flip a label: 'FAKE' is fake, 'Real' is real, 'maybe' is the user's call.
    assert """--label_map '{"FAKE": "fake", "Real": "real", "maybe": "<real|fake>"}'""" in str(error.value)
    assert LabelSpellings(["entailment", "contradiction"]).label_map_suggestion(["E", "Contradiction"]) == (
        '{"E": "<entailment|contradiction>", "Contradiction": "contradiction"}')


def test_rows_without_labels_are_bad_outside_the_test_split_and_unlabelled_inside_it(tmp_path):
    rows = [{"id": "1", "tweet": "masks work", "label": "real"}, {"id": "2", "tweet": "5G", "label": ""}]
    with pytest.raises(BadInputError, match=r"train.csv: no label \(row 2\).*need a label in column 'label'"):
        make_task(tmp_path, rows)
    task = make_task(tmp_path, rows[:1], test_rows=rows)
    assert task.data["test"]["label"] == [0, -1]


def test_hub_datasets_are_read_by_class_name_with_an_unlabelled_test_split(tmp_path):
    from datasets import ClassLabel, Dataset, Features, Value

    folder = tmp_path / "constraint_hub"
    folder.mkdir()
    features = Features({"id": Value("string"), "tweet": Value("string"), "label": ClassLabel(names=["fake", "real"])})
    Dataset.from_dict({"id": ["a", "b"], "tweet": ["5G", "masks work"], "label": [0, 1]},
                      features=features).to_parquet(folder / "train.parquet")
    Dataset.from_dict({"id": ["c"], "tweet": ["wash hands"]}).to_parquet(folder / "test.parquet")
    data = constraint.load(DataArguments(dataset_name=str(folder), dataset_cache_dir=str(tmp_path / "cache")),
                           ConstraintArguments(), bad_rows=BadRows(False))
    assert data["train"]["label"] == [1, 0]  # fake and real by name, onto --class_names real, fake
    assert data["train"].features["label"].names == ["real", "fake"]
    assert data["test"]["label"] == [-1] and data["test"]["id"] == ["c"]
