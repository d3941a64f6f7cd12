"""Tweet classification task: reading CSVs, bad input, normalised features, collation."""

import csv
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, TrainingArguments

from hf_tasks.args import DataArguments
from hf_tasks.errors import BadInputError
from hf_tasks.tasks.text import TextArguments, TextClassificationTask, read_text_table
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


def make_task(tmp_path, rows=None, *, test_rows=None, skip_bad_rows=False, max_seq_length=None, **text_options):
    train = write_csv(tmp_path / "train.csv", rows or [
        {"id": "1", "tweet": "Masks work 😷\nsee https://t.co/abc", "label": "real"},
        {"id": "2", "tweet": "@someone 5G spreads the virus!!! &amp; more", "label": "fake"},
    ])
    test = write_csv(tmp_path / "test.csv", test_rows, header=list(test_rows[0])) if test_rows else None
    data_args = DataArguments(train_file=str(train), validation_file=str(train),
                              test_file=str(test) if test else None, skip_bad_rows=skip_bad_rows,
                              max_seq_length=max_seq_length)
    return TextClassificationTask(data_args, TextArguments(**text_options), AutoTokenizer.from_pretrained(TOKENIZER))


def training_args(tmp_path):
    return TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none")


def test_csv_fields_keep_newlines_commas_and_quotes(tmp_path):
    rows = [{"id": "7", "tweet": 'line one,\n"quoted"\n\nline three', "label": "real"}]
    assert read_text_table(write_csv(tmp_path / "a.csv", rows), ["tweet"]) == rows


def test_sample_files_read_back_with_both_labels():
    rows = read_text_table(SAMPLE / "train.csv", ["id", "tweet", "label"])
    assert len(rows) == 480 and {row["label"] for row in rows} == {"real", "fake"}
    assert any("\n" in row["tweet"] for row in rows)


def test_non_utf8_file_names_the_line_and_the_fix(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("id,tweet,label\n1,fine,real\n2,caf\xe9 rumours,fake\n".encode("latin-1"))
    with pytest.raises(BadInputError, match=r"latin.csv: not UTF-8 text \(byte 0xe9 on line 3.*iconv"):
        read_text_table(path)


def test_missing_column_lists_the_header_and_the_flag(tmp_path):
    path = write_csv(tmp_path / "t.csv", [{"id": "1", "text": "hi", "label": "real"}], header=("id", "text", "label"))
    with pytest.raises(BadInputError, match=r"t.csv: no column 'tweet' \(the header has \['id', 'text', 'label'\]\).*"
                                            r"--text_column"):
        read_text_table(path, ["tweet"])


def test_row_with_too_many_fields_is_reported(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,tweet,label\n1,ok,real\n2,unquoted, comma,fake\n", encoding="utf-8")
    with pytest.raises(BadInputError, match="row 2 .* has 4 fields but the header has 3"):
        read_text_table(path)


def test_labels_other_than_real_fake_are_listed_with_rows_and_a_label_map_fix(tmp_path):
    rows = [{"id": str(i), "tweet": f"tweet {i}", "label": label}
            for i, label in enumerate(["real", "FAKE", "fake", "true", "FAKE"], start=1)]
    task = make_task(tmp_path, rows)
    with pytest.raises(BadInputError) as error:
        task.features(training_args(tmp_path))
    message = str(error.value)
    assert "train.csv" in message and "'FAKE' (rows 2, 5)" in message and "'true' (row 4)" in message
    assert "--label_map" in message and "--skip_bad_rows" in message

    mapped = make_task(tmp_path, rows, label_map='{"FAKE": "fake", "true": "real"}')
    assert mapped.features(training_args(tmp_path))["train"]["labels"] == [0, 1, 1, 0, 1]


def test_empty_tweets_are_refused_or_skipped_and_recorded(tmp_path):
    rows = [{"id": "1", "tweet": "ok", "label": "real"}, {"id": "2", "tweet": " \n ", "label": "fake"},
            {"id": "3", "tweet": "fine", "label": "fake"}]
    with pytest.raises(BadInputError, match=r"empty 'tweet' text in row 2\."):
        make_task(tmp_path, rows).features(training_args(tmp_path))
    task = make_task(tmp_path, rows, skip_bad_rows=True)
    features = task.features(training_args(tmp_path))
    assert len(features["train"]) == 2
    assert {(row["row"], row["id"]) for row in task.skipped_rows} == {(2, "2")}
    assert "empty" in task.skipped_rows[0]["reason"]


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
    assert TextArguments(label_map={"0": "real", 1: "fake"}).label_map == {"0": "real", "1": "fake"}
    with pytest.raises(BadInputError, match="--label_map"):
        TextArguments(label_map="FAKE=fake")


def test_inspection_command_prints_a_row_of_a_file(capsys):
    show_tweet(["--train_file", str(SAMPLE / "train.csv"), "--row", "5"])
    printed = capsys.readouterr().out
    rows = read_text_table(SAMPLE / "train.csv")
    assert f"row 5: id='5', label={rows[4]['label']!r}" in printed
    assert "twitterurl" in printed.splitlines()[-1] and "\\n" not in printed.splitlines()[-1]


def test_blank_lines_between_records_do_not_shift_row_numbers(tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("id,tweet,label\n1,fine,real\n\n2,odd,maybe\n", encoding="utf-8")
    assert [row["id"] for row in read_text_table(path)] == ["1", "2"]
    data_args = DataArguments(train_file=str(path))
    task = TextClassificationTask(data_args, TextArguments(), AutoTokenizer.from_pretrained(TOKENIZER))
    with pytest.raises(BadInputError, match=r"'maybe' \(row 2\)"):
        task.features(training_args(tmp_path))
