"""End to end: the ShEMO recipe on synthetic tone clips with a tiny HuBERT built from config."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForAudioClassification, Wav2Vec2FeatureExtractor

import shemo
from hf_tasks.args import parse
from hf_tasks.audio.io import read_clip
from hf_tasks.modeling.audio import PooledAudioClassifier
from hf_tasks.tasks.audio import AudioCollator
from tests.conftest import accuracy_of_predictions, assert_outcomes_give_the_results, recipe_args
from tests.pipeline_check import assert_pipeline_repeats_predictions, prediction_rows

CONFIG = "recipes/configs/shemo/tiny.yaml"


def run_recipe(output_dir, data_dir, *overrides):
    arguments = recipe_args(CONFIG, output_dir, "--data_dir", str(data_dir),
                            "--dataset_cache_dir", str(data_dir.parent / "cache"), *overrides)
    return shemo.main(parse(*shemo.ARGUMENTS, args=arguments))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("shemo")
    output_dir = root / "run"
    return output_dir, root / "clips", run_recipe(output_dir, root / "clips", "--save_strategy", "no")


def test_tiny_hubert_learns_the_tone_task_well_above_chance(trained):
    _, _, results = trained
    chance = 1 / 6
    assert results["eval_accuracy"] > chance + 0.4, results["eval_accuracy"]
    assert results["test_accuracy"] > chance + 0.4, results["test_accuracy"]
    assert results["test_uar"] > chance + 0.4
    assert "test_recall_fear" in results and "test_support_fear" in results


def test_run_folder_holds_split_conversions_predictions_and_per_class_report(trained):
    output_dir, clips, results = trained
    split = json.loads((output_dir / "split.json").read_text())
    speakers = [set(part["speakers"]) for part in split["splits"].values()]
    assert len(speakers) == 3 and not (speakers[0] & speakers[1] or speakers[0] & speakers[2]
                                       or speakers[1] & speakers[2])
    conversions = json.loads((output_dir / "audio_conversions.json").read_text())
    assert set(conversions["resampled_from_rate"]) == {"22050", "44100"}
    assert conversions["mixed_to_mono_from_channels"] == {"2": 16}
    report = (output_dir / "test_classification_report.txt").read_text()
    assert "fear" in report and "UAR" in report
    for name in ("eval_confusion_matrix.png", "config.yaml", "README.md", "model.safetensors",
                 "preprocessor_config.json"):
        assert (output_dir / name).is_file(), name
    with (output_dir / "test_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == results["test_support_anger"] + sum(
        results[f"test_support_{name}"] for name in ("fear", "happiness", "neutral", "sadness", "surprise"))
    assert {row["speaker"] for row in rows} == set(split["splits"]["test"]["speakers"])
    assert [row["example_id"] for row in rows] == [row["file"] for row in rows]
    assert assert_outcomes_give_the_results(output_dir, results) == 8


def test_saved_model_reloads_and_repeats_the_runs_predictions(trained):
    output_dir, clips, _ = trained
    model = AutoModelForAudioClassification.from_pretrained(output_dir).eval()
    assert isinstance(model, PooledAudioClassifier)
    collator = AudioCollator(Wav2Vec2FeatureExtractor.from_pretrained(output_dir), always_mask=True)
    with (output_dir / "test_predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    batch = collator([{"input_values": read_clip(clips / row["file"], row["file"], 16000).samples, "labels": 0}
                      for row in rows])
    with torch.no_grad():
        logits = model(batch["input_values"], batch["attention_mask"]).logits
    predicted = [model.config.id2label[index] for index in logits.argmax(-1).tolist()]
    assert predicted == [row["predicted_label"] for row in rows]
    probabilities = torch.softmax(logits, -1).max(-1).values.numpy()
    np.testing.assert_allclose(probabilities, [float(row["predicted_probability"]) for row in rows], atol=1e-4)


def test_audio_classification_pipeline_repeats_the_runs_test_predictions(trained):
    output_dir, clips, _ = trained
    rows = prediction_rows(output_dir)
    audio = [{"raw": read_clip(clips / row["file"], row["file"], 16000).samples, "sampling_rate": 16000}
             for row in rows]
    assert_pipeline_repeats_predictions("audio-classification", output_dir, audio, rows)


def test_stock_head_and_stratified_split_run_through_the_recipe(tmp_path):
    results = run_recipe(
        tmp_path / "run", tmp_path / "clips", "--head", "auto", "--split", "stratified", "--num_train_epochs", "1",
        "--oversample", "false", "--time_stretch_prob", "0", "--save_strategy", "no", "--eval_strategy", "no",
        "--do_predict", "false",
    )
    assert results["eval_accuracy"] == pytest.approx(accuracy_of_predictions(tmp_path / "run/eval_predictions.csv"))
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["method"] == "stratified"
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["model_type"] == "hubert" and config["id2label"]["1"] == "fear"


def test_surgery_flags_prune_the_speech_encoder_and_the_pruned_model_reloads(tmp_path):
    quick = ("--num_train_epochs", "1", "--save_strategy", "no", "--eval_strategy", "no", "--do_predict", "false")
    trained = run_recipe(tmp_path / "run", tmp_path / "clips", "--keep_layers", "first:1",
                         "--prune_heads_per_layer", "2", "--prune_importance", "gradient",
                         "--freeze", "embeddings", *quick)
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["encoder"]["num_hidden_layers"] == 1
    assert [len(heads) for heads in config["pruned_heads"].values()] == [2]  # recorded on the saved (top) config
    assert trained["trainable_params"] < trained["total_params"]
    card = (tmp_path / "run" / "README.md").read_text()
    namespace = {}
    exec(card.split("```python\n")[1].split("```")[0], namespace)  # the card's loading code
    assert sum(p.numel() for p in namespace["model"].parameters()) == trained["total_params"]
    reloaded = run_recipe(tmp_path / "again", tmp_path / "clips", "--model_name_or_path", str(tmp_path / "run"),
                          "--head", "auto", "--do_train", "false", "--do_predict", "false")
    assert reloaded["total_params"] == trained["total_params"]
    assert reloaded["eval_accuracy"] == trained["eval_accuracy"]
    assert reloaded["eval_loss"] == pytest.approx(trained["eval_loss"], rel=1e-5)


def test_an_unreadable_clip_in_a_csv_split_stops_the_run_or_is_skipped_and_listed(tmp_path):
    from hf_tasks.errors import BadInputError
    from hf_tasks.samples.shemo import write_synthetic_shemo

    clips = write_synthetic_shemo(tmp_path / "clips", utterances=1, fear_utterances=1)
    (clips / "broken.wav").write_bytes(b"not a wav file at all")
    files = sorted(path.relative_to(clips) for path in clips.rglob("*.wav") if path.name != "broken.wav")
    tables = {"train": files[:32], "validation": [*files[32:], "broken.wav"]}
    for split, chosen in tables.items():
        with (clips / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label"])
            writer.writerows([path, "high" if Path(path).stem[3:4] in "NSW" else "low"] for path in chosen)

    def run_on_tables(output_dir, *overrides):
        arguments = recipe_args(CONFIG, output_dir, "--data_dir", "none", "--generate_synthetic_data", "false",
                                "--train_file", str(clips / "train.csv"),
                                "--validation_file", str(clips / "validation.csv"),
                                "--dataset_cache_dir", str(tmp_path / "cache"), "--num_train_epochs", "1",
                                "--save_strategy", "no", "--eval_strategy", "no", "--do_predict", "false", *overrides)
        return shemo.main(parse(*shemo.ARGUMENTS, args=arguments))

    with pytest.raises(BadInputError,
                       match=r"validation.csv: unreadable audio .*\(clip 'broken.wav'\).*--skip_bad_rows"):
        run_on_tables(tmp_path / "stopped")

    results = run_on_tables(tmp_path / "run", "--skip_bad_rows", "true")
    skipped = json.loads((tmp_path / "run" / "skipped_rows.json").read_text())
    assert [(row["file"], row["clip"], row["split"]) for row in skipped] == [
        (str(clips / "validation.csv"), "broken.wav", "validation")]
    assert "unreadable audio" in skipped[0]["reason"] and results["skipped_rows"] == 1
    with (tmp_path / "run" / "eval_predictions.csv").open() as handle:
        predicted = [row["file"] for row in csv.DictReader(handle)]
    assert sorted(predicted) == sorted(str(path) for path in files[32:])
