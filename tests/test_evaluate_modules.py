"""The toolkit's metrics as `evaluate` modules: they load offline from the package with `evaluate.load(<path>)`
and give the library functions' numbers on random cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hf_tasks.metrics import EVALUATE_MODULES, classification_metrics, evaluate_module, squad_v2_scores
from hf_tasks.metrics.segmentation import mean_iou

evaluate = pytest.importorskip("evaluate")

WORDS = ["تهران", "شیراز", "۱۳۹۹", "1399", "كتاب", "کتاب", "the river", "a river", "رود‌خانه", "رودخانه", ""]


def same(left: dict, right: dict) -> None:
    assert set(left) == set(right)
    for key, value in left.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(right[key]), key
        else:
            assert right[key] == pytest.approx(value), key


@pytest.mark.parametrize("language", ["fa", "en"])
@pytest.mark.parametrize("seed", range(3))
def test_squad_v2_module_equals_the_library(seed, language):
    rng = np.random.default_rng(seed)
    predictions, references = [], []
    for index in range(40):
        gold = [] if rng.random() < 0.3 else list(rng.choice(WORDS[:-1], size=rng.integers(1, 3)))
        predictions.append({"id": str(index), "prediction_text": str(rng.choice(WORDS)),
                            "no_answer_probability": float(rng.random())})
        references.append({"id": str(index), "answers": {"text": gold, "answer_start": [0] * len(gold)}})
    module = evaluate.load(evaluate_module("squad_v2_fa"))
    threshold = float(rng.random())
    result = module.compute(predictions=predictions, references=references, language=language,
                            no_answer_threshold=threshold)
    expected = squad_v2_scores(
        {item["id"]: item["prediction_text"] for item in predictions},
        {item["id"]: item["answers"]["text"] for item in references}, language=language,
        no_answer_probabilities={item["id"]: item["no_answer_probability"] for item in predictions},
        no_answer_threshold=threshold)
    same(expected, result)
    assert 0 <= result["exact"] <= result["f1"] <= 100 and result["total"] == 40


@pytest.mark.parametrize("seed", range(3))
def test_classification_module_equals_the_library(seed):
    rng = np.random.default_rng(seed)
    names = ["anger", "fear", "happiness", "neutral"]
    references = rng.integers(0, len(names), size=60).tolist()
    predictions = rng.integers(0, len(names), size=60).tolist()
    module = evaluate.load(evaluate_module("classification_uar"))
    result = module.compute(predictions=predictions, references=references, label_names=names)
    same(classification_metrics(references, predictions, names), result)
    assert {"accuracy", "macro_f1", "uar", "f1_fear", "support_neutral"} <= set(result)


@pytest.mark.parametrize("seed", range(3))
def test_segmentation_module_equals_the_library(seed):
    rng = np.random.default_rng(seed)
    shapes = [(5, 7), (6, 4), (3, 3)]
    targets = [rng.integers(0, 4, size=shape) for shape in shapes]
    targets[0][0, :] = 255  # ignored pixels
    predictions = [rng.integers(0, 4, size=shape) for shape in shapes]
    module = evaluate.load(evaluate_module("segmentation_miou"))
    result = module.compute(predictions=[mask.tolist() for mask in predictions],
                            references=[mask.tolist() for mask in targets], num_classes=4,
                            class_names=["sky", "road", "tree", "car"])
    same(mean_iou(predictions, targets, 4, class_names=["sky", "road", "tree", "car"]), result)
    assert 0 <= result["mean_iou"] <= 1 and "iou_road" in result


def test_the_documented_examples_hold():
    uar = evaluate.load(evaluate_module("classification_uar"))
    assert uar.compute(predictions=[0, 1, 1], references=[0, 1, 0], label_names=["real", "fake"])["uar"] == 0.75
    miou = evaluate.load(evaluate_module("segmentation_miou"))
    assert miou.compute(predictions=[[[0, 1], [1, 1]]], references=[[[0, 1], [0, 1]]],
                        num_classes=2)["mean_iou"] == pytest.approx(0.5833333333333333)


def test_every_module_folder_is_ready_to_publish_and_an_unknown_name_is_refused():
    folders = sorted(path for path in EVALUATE_MODULES.iterdir() if path.is_dir() and path.name != "__pycache__")
    assert [folder.name for folder in folders] == ["classification_uar", "segmentation_miou", "squad_v2_fa"]
    for folder in folders:
        for name in (f"{folder.name}.py", "README.md", "app.py", "requirements.txt"):
            assert (folder / name).is_file(), folder / name
        assert "hf_tasks" in (folder / "requirements.txt").read_text().split()
    with pytest.raises(ValueError, match="No evaluate module 'bleu'"):
        evaluate_module("bleu")
