import numpy as np
import pytest

from hf_tasks.metrics.classification import (
    classification_metrics,
    classification_report,
    confusion_matrix,
    metric_key,
    plot_confusion_matrix,
)

# Worked by hand: gold/predicted pairs give the matrix
#   cat  [2, 1, 0]
#   dog  [0, 1, 1]
#   bird [0, 0, 1]
LABELS = [0, 0, 0, 1, 1, 2]
PREDICTIONS = [0, 1, 0, 1, 2, 2]
NAMES = ["cat", "dog", "bird"]


def test_confusion_matrix_rows_are_gold():
    matrix = confusion_matrix(LABELS, PREDICTIONS, 3)
    assert matrix.tolist() == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_confusion_matrix_rejects_out_of_range_ids():
    with pytest.raises(ValueError, match="class id 3"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(ValueError, match="pair up"):
        confusion_matrix([0, 1], [0], 3)


def test_metrics_by_hand():
    metrics = classification_metrics(LABELS, PREDICTIONS, NAMES)
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["precision_cat"] == pytest.approx(1.0)
    assert metrics["recall_cat"] == pytest.approx(2 / 3)
    assert metrics["f1_cat"] == pytest.approx(0.8)
    assert metrics["precision_dog"] == pytest.approx(0.5)
    assert metrics["recall_dog"] == pytest.approx(0.5)
    assert metrics["f1_dog"] == pytest.approx(0.5)
    assert metrics["precision_bird"] == pytest.approx(0.5)
    assert metrics["recall_bird"] == pytest.approx(1.0)
    assert metrics["f1_bird"] == pytest.approx(2 / 3)
    assert [metrics[f"support_{n}"] for n in NAMES] == [3, 2, 1]
    assert metrics["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert metrics["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert metrics["uar"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    assert all(0.0 <= value <= 1.0 for key, value in metrics.items() if not key.startswith("support_"))


def test_zero_division_gives_zero_and_absent_classes_do_not_count():
    # b is gold but never predicted; c is neither gold nor predicted.
    metrics = classification_metrics([0, 0, 1], [0, 0, 0], ["a", "b", "c"])
    assert metrics["precision_b"] == 0.0 and metrics["recall_b"] == 0.0 and metrics["f1_b"] == 0.0
    assert metrics["precision_c"] == 0.0 and metrics["support_c"] == 0
    assert metrics["f1_a"] == pytest.approx(0.8)  # 2 tp, 1 fp
    assert metrics["macro_f1"] == pytest.approx(0.4)  # mean over a and b
    assert metrics["uar"] == pytest.approx(0.5)  # mean recall over gold classes a and b


def test_predicted_class_without_gold_counts_in_macro_f1_not_uar():
    metrics = classification_metrics([0, 0], [0, 1], ["a", "b"])
    assert metrics["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert metrics["uar"] == pytest.approx(0.5)


def test_float_label_ids_are_accepted_and_empty_input_rejected():
    metrics = classification_metrics(np.array([0.0, 1.0]), np.array([0, 1]), ["a", "b"])
    assert metrics["accuracy"] == 1.0
    with pytest.raises(ValueError, match="No labelled"):
        classification_metrics([], [], ["a", "b"])


def test_metric_keys_are_sanitised_and_collisions_rejected():
    assert metric_key("hard(hypothesis)") == "hard_hypothesis"
    assert metric_key("not sure") == "not_sure"
    assert "f1_not_sure" in classification_metrics([0, 1], [0, 1], ["yes", "not sure"])
    with pytest.raises(ValueError, match="collide"):
        classification_metrics([0, 1], [0, 1], ["a b", "a_b"])


def test_against_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=300)
    # A skewed, partly right predictor so that per-class numbers differ from one another.
    predictions = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 3, size=300))
    names = ["anger", "fear", "happy", "neutral", "sad"]
    ours = classification_metrics(labels, predictions, names)
    precision, recall, f1, support = sklearn_metrics.precision_recall_fscore_support(
        labels, predictions, labels=range(5), zero_division=0
    )
    for index, name in enumerate(names):
        assert ours[f"precision_{name}"] == pytest.approx(precision[index])
        assert ours[f"recall_{name}"] == pytest.approx(recall[index])
        assert ours[f"f1_{name}"] == pytest.approx(f1[index])
        assert ours[f"support_{name}"] == support[index]
    assert ours["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(labels, predictions))
    assert ours["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(labels, predictions, average="macro"))
    assert ours["weighted_f1"] == pytest.approx(sklearn_metrics.f1_score(labels, predictions, average="weighted"))
    assert ours["uar"] == pytest.approx(sklearn_metrics.balanced_accuracy_score(labels, predictions))
    assert ours["uar"] == pytest.approx(sklearn_metrics.recall_score(labels, predictions, average="macro"))
    assert (confusion_matrix(labels, predictions, 5) == sklearn_metrics.confusion_matrix(labels, predictions)).all()


def test_report_lists_classes_and_averages():
    report = classification_report(LABELS, PREDICTIONS, NAMES)
    lines = {line.split()[0]: line.split() for line in report.splitlines() if line.strip()}
    assert lines["cat"][1:] == ["1.0000", "0.6667", "0.8000", "3"]
    assert lines["bird"][1:] == ["0.5000", "1.0000", "0.6667", "1"]
    assert lines["accuracy"][1:] == ["0.6667", "6"]
    assert lines["macro"][2:] == ["0.6667", "0.7222", "0.6556", "6"]  # precision (1+.5+.5)/3, UAR, macro F1
    assert lines["weighted"][2:] == [f"{(3 + 1 + 0.5) / 6:.4f}", "0.6667", "0.6778", "6"]


@pytest.mark.parametrize("size", [2, 10])
def test_plot_writes_a_png(tmp_path, size):
    rng = np.random.default_rng(size)
    labels = rng.integers(0, size, size=200)
    matrix = confusion_matrix(labels, np.where(rng.random(200) < 0.7, labels, 0), size)
    names = [f"class_{i}" for i in range(size)]
    path = plot_confusion_matrix(matrix, names, tmp_path / "plots" / "cm.png", title="eval")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 5000


def test_plot_rejects_mismatched_names(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        plot_confusion_matrix(np.zeros((3, 3), dtype=int), ["a", "b"], tmp_path / "cm.png")
