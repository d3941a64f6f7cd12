import csv
import math
import warnings

import numpy as np
import pytest
from datasets import Dataset

from hf_tasks.errors import BadInputError
from hf_tasks.tasks.classification import ClassificationTask, label_maps

NLI = ["entailment", "contradiction", "neutral"]


class ToyTask(ClassificationTask):
    display_columns = ("id", "text")
    example_id_column = "id"

    def build_features(self, training_args):
        return {}


class HardSubsetTask(ClassificationTask):
    subset_columns = ("hard(hypothesis)",)

    def build_features(self, training_args):
        return {}


def read_csv(path):
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# Argmax of each row: 0, 1, 1, 2; gold 0, 1, 2, 2 → row 2 is wrong.
LOGITS = np.array([[2.0, 0.0, 0.0], [0.0, 3.0, 1.0], [0.0, 1.0, 0.5], [0.0, 0.0, 4.0]])
GOLD = np.array([0, 1, 2, 2])
TEXTS = ["plain", "a, b, and c", 'line one\nline "two"', "سلام، دنیا\u200cها"]


def toy_task():
    task = ToyTask(NLI)
    task.raw["validation"] = Dataset.from_dict({"id": ["r0", "r1", "r2", "r3"], "text": TEXTS, "other": [1, 2, 3, 4]})
    return task


def test_label_maps():
    maps = label_maps(["real", "fake"])
    assert maps == {"id2label": {0: "real", 1: "fake"}, "label2id": {"real": 0, "fake": 1}, "num_labels": 2}
    with pytest.raises(ValueError, match="unique"):
        label_maps(["a", "a"])


def test_fake_logits_give_metrics_worked_by_hand():
    metrics = toy_task().score("validation", LOGITS, GOLD)
    assert metrics["accuracy"] == pytest.approx(0.75)
    assert metrics["precision_contradiction"] == pytest.approx(0.5)
    assert metrics["recall_neutral"] == pytest.approx(0.5)
    assert metrics["f1_neutral"] == pytest.approx(2 / 3)
    assert metrics["uar"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert metrics["support_neutral"] == 2


def test_tuple_predictions_use_the_logits():
    hidden = np.zeros((4, 7))
    assert toy_task().score("validation", (LOGITS, hidden), GOLD)["accuracy"] == pytest.approx(0.75)


def test_wrong_logit_width_and_bad_labels_are_reported():
    with pytest.raises(ValueError, match=r"shape \(rows, 3\)"):
        toy_task().score("validation", LOGITS[:, :2], GOLD)
    with pytest.raises(BadInputError, match="Row 1 has label id 5"):
        toy_task().score("validation", LOGITS, np.array([0, 5, 2, 2]))
    with pytest.raises(ValueError, match="exactly two classes"):
        ToyTask(NLI, binary_sigmoid=True)


def test_prediction_files_round_trip(tmp_path):
    task = toy_task()
    task.score("validation", LOGITS, GOLD)
    paths = task.write_predictions("validation", tmp_path, "eval")
    assert sorted(path.name for path in paths) == [
        "eval_classification_report.txt",
        "eval_confusion_matrix.png",
        "eval_misclassified.csv",
        "eval_predictions.csv",
    ]
    rows = read_csv(tmp_path / "eval_predictions.csv")
    assert list(rows[0]) == [
        "id", "text", "example_id", "gold_label", "predicted_label", "predicted_probability",
        "probability_entailment", "probability_contradiction", "probability_neutral",
    ]
    assert [row["text"] for row in rows] == TEXTS
    assert [row["id"] for row in rows] == [row["example_id"] for row in rows] == ["r0", "r1", "r2", "r3"]
    assert [row["gold_label"] for row in rows] == ["entailment", "contradiction", "neutral", "neutral"]
    assert [row["predicted_label"] for row in rows] == ["entailment", "contradiction", "contradiction", "neutral"]
    first = math.exp(2) / (math.exp(2) + 2)
    assert float(rows[0]["probability_entailment"]) == pytest.approx(first, abs=1e-6)
    assert float(rows[0]["predicted_probability"]) == pytest.approx(first, abs=1e-6)
    for row in rows:
        probabilities = [float(row[f"probability_{name}"]) for name in NLI]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert float(row["predicted_probability"]) == pytest.approx(max(probabilities))
    wrong = read_csv(tmp_path / "eval_misclassified.csv")
    assert [row["id"] for row in wrong] == ["r2"]
    assert wrong[0]["text"] == TEXTS[2]
    report = (tmp_path / "eval_classification_report.txt").read_text(encoding="utf-8")
    assert "4 labelled examples" in report and "contradiction" in report
    assert (tmp_path / "eval_confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"


def test_missing_display_column_names_it(tmp_path):
    task = toy_task()
    task.raw["validation"] = task.raw["validation"].remove_columns("text")
    task.score("validation", LOGITS, GOLD)
    with pytest.raises(BadInputError, match="'text'"):
        task.write_predictions("validation", tmp_path, "eval")


def test_misaligned_raw_rows_are_an_error(tmp_path):
    task = toy_task()
    task.score("validation", LOGITS[:3], GOLD[:3])
    with pytest.raises(ValueError, match="line up"):
        task.write_predictions("validation", tmp_path, "eval")


def test_sigmoid_mode():
    task = ToyTask(["real", "fake"], binary_sigmoid=True)
    assert task.num_labels == 1
    task.raw["validation"] = Dataset.from_dict({"id": [0, 1, 2, 3], "text": ["a", "b", "c", "d"]})
    logits = np.array([[2.0], [-1.0], [0.5], [-3.0]])
    metrics = task.score("validation", logits, np.array([1.0, 0.0, 0.0, 0.0]))  # BCE labels are floats
    assert metrics["accuracy"] == pytest.approx(0.75)  # row 2 predicted fake, gold real
    assert metrics["recall_real"] == pytest.approx(2 / 3)
    assert metrics["precision_fake"] == pytest.approx(0.5)
    probabilities = task.scored["validation"].probabilities
    assert probabilities[0, 1] == pytest.approx(1 / (1 + math.exp(-2.0)))
    assert probabilities[1, 0] == pytest.approx(1 - 1 / (1 + math.exp(1.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings for extreme logits
        extreme = task.probabilities(np.array([1000.0, -1000.0]))
    assert extreme.tolist() == [[0.0, 1.0], [1.0, 0.0]]


def test_subset_accuracy():
    task = HardSubsetTask(NLI)
    # Correct rows are 0, 1 and 3; the hard subset is rows 0, 2 and 3 → 2/3.
    task.raw["test"] = Dataset.from_dict({"hard(hypothesis)": [1, 0, 1, 1]})
    metrics = task.score("test", LOGITS, GOLD)
    assert metrics["accuracy_hard_hypothesis"] == pytest.approx(2 / 3)
    assert metrics["accuracy"] == pytest.approx(0.75)
    task.raw["test"] = Dataset.from_dict({"hard(hypothesis)": [1.0, 0.0, 0.0, 1.0]})  # as pandas reads it
    assert task.score("test", LOGITS, GOLD)["accuracy_hard_hypothesis"] == pytest.approx(1.0)


def test_subset_column_must_exist_and_hold_0_1():
    task = HardSubsetTask(NLI)
    task.raw["test"] = Dataset.from_dict({"hard": [1, 0, 1, 1]})
    with pytest.raises(BadInputError, match="hard\\(hypothesis\\)"):
        task.score("test", LOGITS, GOLD)
    task.raw["test"] = Dataset.from_dict({"hard(hypothesis)": [1, 0, 2, 1]})
    with pytest.raises(BadInputError, match="row 2"):
        task.score("test", LOGITS, GOLD)


def test_unlabelled_test_split_keeps_predictions(tmp_path):
    task = toy_task()
    task.raw["test"] = task.raw["validation"]
    assert task.score("test", LOGITS, None) == {}
    assert task.score("test", LOGITS, np.array([-1, -1, -1, -1])) == {}
    paths = task.write_predictions("test", tmp_path, "test")
    assert [path.name for path in paths] == ["test_predictions.csv"]
    rows = read_csv(tmp_path / "test_predictions.csv")
    assert [row["gold_label"] for row in rows] == ["", "", "", ""]
    assert [row["predicted_label"] for row in rows] == ["entailment", "contradiction", "contradiction", "neutral"]


def test_rows_without_label_are_left_out_of_metrics(tmp_path):
    task = toy_task()
    # Row 2 (the wrong one) carries the Trainer's ignore index, so everything scored is right.
    metrics = task.score("validation", LOGITS, np.array([0, 1, -100, 2]))
    assert metrics["accuracy"] == 1.0
    assert metrics["support_neutral"] == 1
    task.write_predictions("validation", tmp_path, "eval")
    assert read_csv(tmp_path / "eval_misclassified.csv") == []
    assert read_csv(tmp_path / "eval_predictions.csv")[2]["gold_label"] == ""


def test_unscored_prefix_writes_nothing(tmp_path):
    assert toy_task().write_predictions("test", tmp_path, "test") == []


def test_without_an_id_column_the_example_id_is_the_row_position(tmp_path):
    task = HardSubsetTask(NLI)
    task.raw["validation"] = Dataset.from_dict({"hard(hypothesis)": [1, 0, 1, 0]})
    task.score("validation", LOGITS, GOLD)
    task.write_predictions("validation", tmp_path, "eval")
    assert [row["example_id"] for row in read_csv(tmp_path / "eval_predictions.csv")] == ["1", "2", "3", "4"]
