"""The audio clip adapter and task: sources (ShEMO folder, CSV, hub-format data), splits written to the
run folder, conversions reported, bad clips, class balance, and augmentation of training clips only."""

import csv
import json
import re

import datasets
import numpy as np
import pytest
import soundfile
from transformers import TrainingArguments, Wav2Vec2FeatureExtractor

from hf_tasks.options import DataArguments
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.audio.io import read_clip
from hf_tasks.data import audio_clips
from hf_tasks.data.sources import class_names_of
from hf_tasks.modeling import audio_classifier
from hf_tasks.modeling.labels import ClassLabels, class_weights
from hf_tasks.samples.shemo import SPEAKERS, TINY_HUBERT, write_synthetic_shemo
from hf_tasks.tasks.audio import AudioArguments, AudioClassificationTask
from hf_tasks.audio.augment import AugmentSettings
from hf_tasks.data.audio_clips import ClipArguments
from hf_tasks.errors import BadInputError

RATE = 16000


@pytest.fixture(scope="module")
def shemo_dir(tmp_path_factory):
    """8 speakers × 6 emotions × 1 utterance, some at 22.05/44.1 kHz and one speaker in stereo."""
    return write_synthetic_shemo(tmp_path_factory.mktemp("shemo"), utterances=1, fear_utterances=1)


@pytest.fixture(scope="module")
def feature_extractor():
    return Wav2Vec2FeatureExtractor.from_pretrained(TINY_HUBERT)


def data_args(tmp_path, **kwargs):
    return DataArguments(dataset_cache_dir=str(tmp_path / "cache"), **kwargs)


def clip_args(**kwargs):
    return ClipArguments(**{"validation_fraction": 0.25, "test_fraction": 0.25, "split_seed": 0, **kwargs})


def training_args(tmp_path):
    return TrainingArguments(output_dir=str(tmp_path / "run"), use_cpu=True, report_to=[])


def make_task(tmp_path, feature_extractor, data_kwargs, **options):
    """The task as the recipe builds it: listings from the adapter, then the task (no model: no mask). `options`
    are fields of the recipe's clip, audio and augmentation groups."""
    groups = {kind: {name: value for name, value in options.items() if name in kind.__dataclass_fields__}
              for kind in (ClipArguments, AudioArguments, AugmentSettings)}
    assert set(options) == {name for given in groups.values() for name in given}, "an option of no group"
    data_arguments = data_args(tmp_path, **data_kwargs)
    bad_rows = BadRows(data_arguments.skip_bad_rows)  # one log for the adapter and the task, as parse makes it
    listings = audio_clips.load(data_arguments, clip_args(**groups[ClipArguments]), bad_rows=bad_rows)
    return AudioClassificationTask(listings, feature_extractor, data_arguments,
                                   AudioArguments(**groups[AudioArguments]), AugmentSettings(**groups[AugmentSettings]),
                                   attention_mask=False, bad_rows=bad_rows)


def build(tmp_path, feature_extractor, data_kwargs, **audio_kwargs):
    task = make_task(tmp_path, feature_extractor, data_kwargs, **audio_kwargs)
    return task, task.features(training_args(tmp_path))


def names(task, listing):
    return [task.label_names[label] for label in listing["label"]]


def original(folder, file):
    return read_clip(folder / file, file, RATE).samples


def assert_held_out_clips_are_the_originals(task, features, folder):
    for prefix in ("validation", "test"):
        for row, file in enumerate(task.raw[prefix]["file"]):
            np.testing.assert_array_equal(features[prefix][row]["input_values"], original(folder, file))


def test_augmentation_touches_training_clips_only_and_differs_on_every_access(tmp_path, shemo_dir, feature_extractor):
    task, features = build(
        tmp_path, feature_extractor, {"data_dir": str(shemo_dir)}, noise_prob=1.0, gain_prob=1.0, max_duration=None,
    )
    assert_held_out_clips_are_the_originals(task, features, shemo_dir)
    train = features["train"]
    for row, file in enumerate(task.listings["train"]["file"]):
        clean = original(shemo_dir, file)
        first, second = train[row]["input_values"], train[row]["input_values"]
        assert len(first) == len(second) == len(clean)
        assert not np.allclose(first, clean, atol=1e-4) and not np.allclose(first, second, atol=1e-4)
        assert np.corrcoef(first, clean)[0, 1] > 0.9  # the same clip, with noise and gain


def test_training_clips_are_random_windows_and_held_out_clips_stay_whole(tmp_path, shemo_dir, feature_extractor):
    task, features = build(tmp_path, feature_extractor, {"data_dir": str(shemo_dir)}, max_duration=0.5)
    assert_held_out_clips_are_the_originals(task, features, shemo_dir)
    assert max(len(clip) for clip in features["validation"]["input_values"]) > RATE // 2
    starts = set()
    for row, file in enumerate(task.listings["train"]["file"]):
        clean, clip = original(shemo_dir, file), features["train"][row]["input_values"]
        assert len(clip) == min(len(clean), RATE // 2)
        matches = [s for s in np.flatnonzero(clean == clip[0]) if np.array_equal(clean[s : s + len(clip)], clip)]
        assert matches, f"training clip {row} is not a window of {file}"
        starts.add(int(matches[0]))
    assert len(starts) > 5  # windows start at random places, not all at 0


def test_split_and_conversions_go_to_the_run_folder(tmp_path, shemo_dir, feature_extractor):
    task, features = build(tmp_path, feature_extractor, {"data_dir": str(shemo_dir)})
    assert not (tmp_path / "run").exists()  # the runner writes the task's files, after its snapshot
    split = json.loads(task.run_files()["split.json"])
    assert (split["method"], split["seed"], split["test_fraction"]) == ("speaker", 0, 0.25)
    speakers = {name: set(part["speakers"]) for name, part in split["splits"].items()}
    assert set(speakers) == {"train", "validation", "test"}
    assert not (speakers["train"] & speakers["validation"] or speakers["train"] & speakers["test"]
                or speakers["validation"] & speakers["test"])
    listed = [entry["file"] for part in split["splits"].values() for entry in part["files"]]
    assert sorted(listed) == sorted(str(p.relative_to(shemo_dir)) for p in shemo_dir.rglob("*.wav"))
    assert split["splits"]["test"]["clips"] == len(features["test"])
    assert {entry["speaker"] for entry in split["splits"]["test"]["files"]} == speakers["test"]

    conversions = json.loads(task.run_files()["audio_conversions.json"])
    per_speaker = 6  # one clip per emotion
    rates = {}
    for _, rate, _ in SPEAKERS:
        if rate != RATE:
            rates[str(rate)] = rates.get(str(rate), 0) + per_speaker
    assert conversions["resampled_from_rate"] == rates
    assert conversions["mixed_to_mono_from_channels"] == {"2": per_speaker}
    assert conversions["clips"] == 8 * per_speaker
    # Decoded once: the runner and surgery (head importance) share the task's features.
    assert task.features(training_args(tmp_path)) is features


def test_a_different_split_seed_gives_a_different_speaker_split(tmp_path, shemo_dir, feature_extractor):
    first = audio_clips.load(data_args(tmp_path, data_dir=str(shemo_dir)), clip_args(split_seed=0),
                             bad_rows=BadRows(False))
    other = audio_clips.load(data_args(tmp_path, data_dir=str(shemo_dir)), clip_args(split_seed=5),
                             bad_rows=BadRows(False))
    assert set(first["test"]["speaker"]) != set(other["test"]["speaker"])


def test_stratified_split_of_a_folder(tmp_path, shemo_dir, feature_extractor):
    task = make_task(tmp_path, feature_extractor, {"data_dir": str(shemo_dir)}, split="stratified",
                     validation_fraction=0.5, test_fraction=0.0)
    assert set(task.listings) == {"train", "validation"}
    for listing in task.listings.values():
        assert sorted(names(task, listing)) == sorted(task.label_names * 4)


def test_bad_clips_fail_naming_the_file_or_are_skipped_on_request(tmp_path, shemo_dir, feature_extractor):
    folder = tmp_path / "data"
    write_synthetic_shemo(folder, utterances=1, fear_utterances=1)
    (folder / "female" / "F01A09.wav").write_bytes(b"not a wav file at all")
    soundfile.write(folder / "male" / "M01N09.wav", np.zeros(0, np.float32), RATE)
    with pytest.raises(BadInputError, match=r"unreadable audio .*'female/F01A09.wav'") as error:
        build(tmp_path, feature_extractor, {"data_dir": str(folder)}, split="stratified", validation_fraction=0.2,
              test_fraction=0.2)
    assert "the clip is empty (0 samples); remove it or replace it with the real recording. (clip 'male/M01N09.wav')" \
        in str(error.value) and "--skip_bad_rows" in str(error.value)
    assert str(error.value).startswith(f"{folder}: ")

    (folder / "male" / "M02X01.wav").write_bytes((folder / "male" / "M02A01.wav").read_bytes())
    with pytest.raises(BadInputError, match=r"unknown emotion letter 'X'.*\(clip 'male/M02X01.wav'\)"):
        audio_clips.load(data_args(tmp_path, data_dir=str(folder)), clip_args(), bad_rows=BadRows(False))

    task, features = build(tmp_path, feature_extractor, {"data_dir": str(folder), "skip_bad_rows": True})
    skipped = {item["clip"]: item["reason"] for item in task.bad_rows.skipped}
    assert set(skipped) == {"female/F01A09.wav", "male/M01N09.wav", "male/M02X01.wav"}
    kept = [file for prefix in ("validation", "test") for file in task.raw[prefix]["file"]]
    assert not set(kept) & set(skipped)
    assert sum(len(part) for part in features.values()) == 48


def test_missing_folder_fails_clearly(tmp_path, feature_extractor):
    with pytest.raises(BadInputError, match="no such folder"):
        audio_clips.load(data_args(tmp_path, data_dir=str(tmp_path / "ShEMO")), clip_args(), bad_rows=BadRows(False))


def test_oversampling_repeats_rarer_training_classes_up_to_the_largest(tmp_path, feature_extractor):
    folder = write_synthetic_shemo(tmp_path / "data", utterances=2, fear_utterances=1)
    task, features = build(tmp_path, feature_extractor, {"data_dir": str(folder)}, oversample=True, noise_prob=1.0)
    counts = np.bincount(features["train"]["labels"], minlength=6)
    assert counts.tolist() == [counts.max()] * 6
    assert len(features["validation"]) == len(task.listings["validation"])  # held-out splits are not resampled
    weights = class_weights(task.listings)
    fear = task.label_names.index("fear")
    assert weights[fear] == pytest.approx(2 * weights[0])
    assert class_weights(task.listings, oversampled=True) == pytest.approx([1.0] * 6)  # balanced by oversampling


def test_class_weighted_loss_needs_the_pooled_head(tmp_path, shemo_dir, feature_extractor):
    from hf_tasks.options import AudioHeadArguments, ModelArguments

    data = audio_clips.load(data_args(tmp_path, data_dir=str(shemo_dir)), clip_args(), bad_rows=BadRows(False))
    labels = ClassLabels.of(data, class_weighted=True)
    model_args = ModelArguments(config_name=str(TINY_HUBERT))
    with pytest.raises(BadInputError, match="--head pooled"):
        audio_classifier.build_model(model_args, AudioHeadArguments(class_weighted_loss=True), labels,
                                     feature_extractor)
    model = audio_classifier.build_model(model_args, AudioHeadArguments(class_weighted_loss=True, head="pooled"),
                                         labels, feature_extractor)
    assert model.config.class_weights == pytest.approx(class_weights(data))
    assert model.config.id2label == dict(enumerate(class_names_of(data, "label")))
    assert model.config.encoder_takes_attention_mask is False


def test_csv_files_with_path_label_speaker(tmp_path, shemo_dir, feature_extractor):
    files = sorted(shemo_dir.rglob("*.wav"))
    for name, chosen in (("train", files[:30]), ("validation", files[30:])):
        with (tmp_path / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", "speaker"])
            for path in chosen:
                writer.writerow([path.relative_to(tmp_path) if path.is_relative_to(tmp_path) else path,
                                 "high" if path.stem[3] in "NSW" else "low", path.stem[:3]])
    task, features = build(tmp_path, feature_extractor,
                           {"train_file": str(tmp_path / "train.csv"),
                            "validation_file": str(tmp_path / "validation.csv")})
    assert task.label_names == ["high", "low"]
    assert task.split_record["method"] == "given"
    assert (len(features["train"]), len(features["validation"])) == (30, len(files) - 30)
    np.testing.assert_array_equal(features["validation"][0]["input_values"], read_clip(files[30], "", RATE).samples)

    (tmp_path / "bad.csv").write_text("file,emotion\nx.wav,anger\n")
    with pytest.raises(BadInputError, match=r"bad.csv: no column 'path', 'label'"):
        build(tmp_path, feature_extractor, {"train_file": str(tmp_path / "bad.csv")})


def test_hub_format_dataset_with_audio_and_label_columns_is_split_by_speaker(tmp_path, shemo_dir, feature_extractor):
    files = sorted(shemo_dir.rglob("*.wav"))
    names = ["anger", "fear", "happiness", "neutral", "sadness", "surprise"]
    letters = "AFHNSW"
    table = datasets.Dataset.from_dict({
        "audio": [{"bytes": path.read_bytes(), "path": path.name} for path in files],
        "label": [letters.index(path.stem[3]) for path in files],
        "speaker_id": [path.stem[:3] for path in files],
    }).cast_column("audio", datasets.Audio()).cast_column("label", datasets.ClassLabel(names=names))
    (tmp_path / "hub").mkdir()
    table.to_parquet(str(tmp_path / "hub" / "train.parquet"))
    task, features = build(tmp_path, feature_extractor, {"dataset_name": str(tmp_path / "hub")})
    assert task.label_names == names and task.split_record["method"] == "speaker"
    assert not set(task.listings["train"]["speaker"]) & set(task.listings["test"]["speaker"])
    row = task.raw["test"][0]
    path = next(p for p in files if p.name == row["file"])
    np.testing.assert_array_equal(features["test"][0]["input_values"], read_clip(path, "", RATE).samples)
    assert names[features["test"][0]["labels"]] == names[letters.index(path.stem[3])]


def test_given_hub_splits_are_kept_and_an_unlabelled_test_split_is_allowed(tmp_path, shemo_dir, feature_extractor):
    files = sorted(shemo_dir.rglob("*.wav"))
    (tmp_path / "hub").mkdir()
    for split, chosen, labelled in (("train", files[:24], True), ("test", files[24:30], False)):
        datasets.Dataset.from_dict({
            "audio": [str(path) for path in chosen],
            "label": [path.stem[3] if labelled else None for path in chosen],
        }).to_parquet(str(tmp_path / "hub" / f"{split}.parquet"))
    task, features = build(tmp_path, feature_extractor, {"dataset_name": str(tmp_path / "hub")})
    assert task.split_record["method"] == "given" and set(features) == {"train", "test"}
    assert task.label_names == sorted({path.stem[3] for path in files[:24]})
    assert list(features["test"]["labels"]) == [-100] * 6
    assert list(task.raw["test"]["file"]) == [str(path) for path in files[24:30]]

    datasets.Dataset.from_dict({"audio": [str(files[0]), str(files[1])], "label": ["A", None]}).to_parquet(
        str(tmp_path / "hub" / "train.parquet"))
    with pytest.raises(BadInputError, match=rf"no label \(clip '{re.escape(str(files[1]))}'\)"):
        build(tmp_path, feature_extractor, {"dataset_name": str(tmp_path / "hub")})


def test_csv_rows_with_an_empty_path_or_label_stop_naming_their_lines_or_are_skipped(tmp_path):
    (tmp_path / "train.csv").write_text("path,label,speaker\na.wav,x,s1\n,y,s2\nb.wav,,s3\nc.wav,y,s4\n")
    with pytest.raises(BadInputError,
                       match=r"train.csv: empty path \(line 3\); empty label \(line 4\)\. .*--skip_bad_rows"):
        audio_clips.load(data_args(tmp_path, train_file=str(tmp_path / "train.csv"),
                                   validation_file=str(tmp_path / "train.csv")),
                         clip_args(), bad_rows=BadRows(False))
    skipping = BadRows(True)
    data = audio_clips.load(data_args(tmp_path, train_file=str(tmp_path / "train.csv")),
                            clip_args(split="stratified", validation_fraction=0.0, test_fraction=0.0),
                            bad_rows=skipping)
    assert data["train"]["file"] == ["a.wav", "c.wav"] and class_names_of(data, "label") == ["x", "y"]
    assert data["train"]["path"] == [str(tmp_path / "a.wav"), str(tmp_path / "c.wav")]
    assert [(row["line"], row["split"], row["reason"]) for row in skipping.skipped] == [
        (3, "train", "empty path"), (4, "train", "empty label")]


def test_a_clip_longer_than_the_cap_is_refused_from_its_header_and_skippable(tmp_path, feature_extractor):
    folder = tmp_path / "data"
    write_synthetic_shemo(folder, utterances=1, fear_utterances=1)
    long_clip = folder / "female" / "F01A09.wav"
    soundfile.write(long_clip, np.full(3 * RATE, 0.1, np.float32), RATE)
    with pytest.raises(BadInputError, match=r"3.0 s long, over --max_clip_seconds 2; .*'female/F01A09.wav'"):
        build(tmp_path, feature_extractor, {"data_dir": str(folder)}, max_clip_seconds=2.0)
    task, _ = build(tmp_path, feature_extractor, {"data_dir": str(folder), "skip_bad_rows": True},
                    max_clip_seconds=2.0)
    assert [item["clip"] for item in task.bad_rows.skipped] == ["female/F01A09.wav"]
    assert read_clip(long_clip, "long", RATE).samples.size == 3 * RATE  # read whole without a cap
