"""Audio classification (speech emotion recognition on ShEMO, or any labelled clips).

Data comes from one of
- `--data_dir`: a folder tree of ShEMO wav files (`F03A02.wav`: gender F/M, speaker number, emotion
  letter, utterance number), at any depth;
- `--dataset_name`: a hub (or local) dataset with an `audio` and a `label` column;
- `--train_file` etc.: CSV files with `path,label` and optionally `speaker` (paths relative to the CSV).

A single pool of clips (a folder, or data with only a train split) is split here: speaker-independent
(`--split speaker`, the default: no speaker in two splits) or stratified by class; the split, its seed
and every file's place are written to `split.json` in the run folder.

Clips are decoded once, mixed down to mono and resampled to the feature extractor's rate (cached by
`datasets`; what was converted goes to `audio_conversions.json` and the log). Only the training split
is randomly cropped to `--max_duration` and augmented, on the fly, every epoch; validation and test
clips are used whole and untouched. Class balance: `--oversample` (augmented repeats of rarer classes
in training) or `--class_weighted_loss` (pooled head).
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from datasets import Dataset
from datasets.fingerprint import Hasher

from hf_tasks.audio.augment import Augmenter, AugmentSettings, random_crop
from hf_tasks.audio.io import read_clip
from hf_tasks.audio.splits import SPLIT_METHODS, split_pool
from hf_tasks.errors import BadInputError
from hf_tasks.data.sources import load_splits
from hf_tasks.data.splits import limit_splits
from hf_tasks.tasks.classification import ClassificationTask, label_maps

logger = logging.getLogger(__name__)

SHEMO_EMOTIONS = {"A": "anger", "F": "fear", "H": "happiness", "N": "neutral", "S": "sadness", "W": "surprise"}
SHEMO_NAME = re.compile(r"(?P<gender>[FM])(?P<number>\d+)(?P<emotion>[A-Z])(?P<utterance>\d+)", re.IGNORECASE)
#: Columns a hub dataset may name its speakers by, tried in order when --speaker_column is unset.
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id")
#: Bump when decoding changes, so cached decoded clips are not reused.
DECODE_VERSION = 1
HEADS = ("auto", "pooled")


@dataclass
class AudioArguments(AugmentSettings):
    """Audio task arguments; the augmentation fields (`--pitch_shift_prob` ...) come from `AugmentSettings`."""

    head: str = field(
        default="auto",
        metadata={"help": "auto: the checkpoint's AutoModelForAudioClassification head; "
                          "pooled: masked mean over time → FC → tanh → FC (padding-invariant, class weights)."},
    )
    head_hidden_size: int = field(default=256, metadata={"help": "Width of the pooled head's hidden layer."})
    head_dropout: float = field(default=0.1, metadata={"help": "Dropout of the pooled head."})
    freeze_feature_encoder: bool = field(
        default=True, metadata={"help": "Keep the convolutional waveform encoder fixed while fine-tuning."}
    )
    split: str = field(
        default="speaker",
        metadata={"help": f"How to split one pool of clips: {' or '.join(SPLIT_METHODS)} (speaker: no speaker in two splits)."},
    )
    validation_fraction: float = field(default=0.1, metadata={"help": "Share of a pool held out for validation."})
    test_fraction: float = field(default=0.1, metadata={"help": "Share of a pool held out for testing."})
    split_seed: int = field(default=42, metadata={"help": "Seed of the split (saved in split.json)."})
    max_duration: float | None = field(
        default=6.0, metadata={"help": "Seconds of a random crop of each training clip (evaluation uses whole clips)."}
    )
    trim_silence: bool = field(default=False, metadata={"help": "Cut leading and trailing silence of every clip."})
    trim_top_db: float = field(default=30.0, metadata={"help": "Silence = this many dB below the clip's peak."})
    oversample: bool = field(
        default=False,
        metadata={"help": "Repeat training clips of rarer classes up to the largest class (each repeat augmented anew)."},
    )
    class_weighted_loss: bool = field(
        default=False, metadata={"help": "Weigh the loss by inverse training class frequency (needs --head pooled)."}
    )
    audio_column: str = field(default="audio", metadata={"help": "Audio column of a hub dataset."})
    label_column: str = field(default="label", metadata={"help": "Label column of a hub dataset."})
    speaker_column: str | None = field(
        default=None, metadata={"help": f"Speaker column of a hub dataset (default: the first of {SPEAKER_COLUMNS})."}
    )
    generate_synthetic_data: bool = field(
        default=False,
        metadata={"help": "Write synthetic ShEMO-style tone clips into --data_dir first (a new folder, or one it wrote)."},
    )

    def __post_init__(self):
        super().__post_init__()
        if self.head not in HEADS:
            raise ValueError(f"--head {self.head!r}: choose one of {HEADS}.")
        if self.split not in SPLIT_METHODS:
            raise ValueError(f"--split {self.split!r}: choose one of {SPLIT_METHODS}.")
        if self.max_duration is not None and self.max_duration <= 0:
            raise ValueError(f"--max_duration must be positive seconds, got {self.max_duration}.")

    def augment_settings(self) -> AugmentSettings:
        return AugmentSettings(**{name: getattr(self, name) for name in AugmentSettings.__dataclass_fields__})


@dataclass(frozen=True)
class ShemoName:
    """What a ShEMO file name says: `F03A02` is female speaker 3, anger, utterance 2."""

    gender: str
    speaker: str
    emotion: str
    utterance: int


def parse_shemo_name(path: str | Path) -> ShemoName:
    """Parse a ShEMO file name; `BadInputError` naming the file when it does not follow the scheme."""
    stem = Path(path).stem
    match = SHEMO_NAME.fullmatch(stem)
    if match is None:
        raise BadInputError(
            f"{path}: not a ShEMO file name (expected e.g. F03A02.wav: gender F/M, speaker number, emotion "
            f"letter {'/'.join(SHEMO_EMOTIONS)}, utterance number). Rename or remove it."
        )
    gender, letter = match["gender"].upper(), match["emotion"].upper()
    if letter not in SHEMO_EMOTIONS:
        raise BadInputError(
            f"{path}: unknown emotion letter {letter!r}; ShEMO uses "
            + ", ".join(f"{key}={name}" for key, name in SHEMO_EMOTIONS.items())
            + ". Rename or remove the file."
        )
    return ShemoName(gender, f"{gender}{int(match['number']):02d}", SHEMO_EMOTIONS[letter], int(match["utterance"]))


def _pool_listing(rows: list[dict[str, Any]]) -> Dataset:
    return Dataset.from_dict({key: [row[key] for row in rows] for key in ("file", "path", "label", "speaker")})


def list_shemo_folder(data_dir: str | Path) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Rows (file, path, label, speaker) of every wav file under `data_dir`, and the files whose
    names are not ShEMO names (with the reason)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise BadInputError(f"--data_dir {data_dir}: no such folder; point it at ShEMO's folder (with female/ and male/).")
    paths = sorted(path for path in data_dir.rglob("*") if path.suffix.lower() == ".wav" and path.is_file())
    if not paths:
        raise BadInputError(f"--data_dir {data_dir}: no .wav files in it or below it.")
    rows, bad = [], []
    for path in paths:
        relative = str(path.relative_to(data_dir))
        try:
            name = parse_shemo_name(relative)
        except BadInputError as error:
            bad.append({"file": relative, "reason": str(error)})
            continue
        rows.append({"file": relative, "path": str(path), "label": name.emotion, "speaker": name.speaker})
    return rows, bad


def read_clip_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of a `path,label[,speaker]` CSV; paths are relative to the CSV's folder unless absolute."""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        missing = [column for column in ("path", "label") if column not in columns]
        if missing:
            raise BadInputError(f"{path}: missing column(s) {missing} (has {columns}); the header must be path,label[,speaker].")
        rows = []
        for line, row in enumerate(reader, start=2):
            if not (row["path"] or "").strip() or not (row["label"] or "").strip():
                raise BadInputError(f"{path}, line {line}: empty path or label; fill it in or delete the line.")
            audio = Path(row["path"].strip())
            audio = audio if audio.is_absolute() else path.parent / audio
            rows.append({"file": row["path"].strip(), "path": str(audio), "label": row["label"].strip(),
                         "speaker": (row.get("speaker") or "").strip()})
    if not rows:
        raise BadInputError(f"{path}: no rows below the header.")
    return rows


def _decode_row(row: dict[str, Any], *, rate: int, trim_top_db: float | None) -> dict[str, Any]:
    """One decoded clip; errors are returned, not raised, so every bad file is reported at once."""
    audio = row.get("audio")
    source = row.get("path") or (audio if isinstance(audio, str) else audio.get("bytes") or audio.get("path"))
    try:
        clip = read_clip(source, row["file"], rate, trim_top_db=trim_top_db)
    except BadInputError as error:
        return {"input_values": np.zeros(0, np.float32), "source_rate": 0, "source_channels": 0,
                "trimmed_samples": 0, "error": str(error)}
    return {"input_values": clip.samples, "source_rate": clip.source_rate, "source_channels": clip.source_channels,
            "trimmed_samples": clip.trimmed_samples, "error": ""}


DECODED_FEATURES = datasets.Features({
    "file": datasets.Value("string"),
    "labels": datasets.Value("int64"),
    "speaker": datasets.Value("string"),
    "input_values": datasets.List(datasets.Value("float32")),
    "source_rate": datasets.Value("int64"),
    "source_channels": datasets.Value("int64"),
    "trimmed_samples": datasets.Value("int64"),
    "error": datasets.Value("string"),
})


class TrainingClips:
    """`datasets` transform of the training split: a random crop, then random augmentation.

    Randomness comes from torch's generator (seeded by the Trainer, and per DataLoader worker), so
    runs repeat with the same seed and every access draws a new version of the clip.
    """

    def __init__(self, augmenter: Augmenter | None, max_samples: int | None):
        self.augmenter = augmenter
        self.max_samples = max_samples

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        rng = np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
        clips = []
        for samples in batch["input_values"]:
            samples = np.asarray(samples, dtype=np.float32)
            if self.augmenter is not None:
                # Crop before the costly transforms, with room for a slowing time stretch.
                if self.max_samples is not None:
                    samples = random_crop(samples, int(np.ceil(self.max_samples * self.augmenter.longest_stretch)), rng)
                samples = self.augmenter(samples, rng)
            clips.append(random_crop(samples, self.max_samples, rng))
        return {"input_values": clips, "labels": batch["labels"]}


class AudioCollator:
    """Pads a batch of clips to its longest clip, after normalising each clip over its own samples.

    The feature extractor's own batch call would normalise padded arrays including the padding when
    it returns no attention mask; here each clip is normalised alone, so its values never depend on
    its batch. The attention mask is returned when the feature extractor asks for one
    (`return_attention_mask`; group-norm wav2vec2/HuBERT-base checkpoints must not get one) or when
    `always_mask` is set (the pooled head, which only pools with it for such encoders).
    """

    def __init__(self, feature_extractor, *, always_mask: bool = False):
        from transformers import Wav2Vec2FeatureExtractor

        if not isinstance(feature_extractor, Wav2Vec2FeatureExtractor):
            raise ValueError(
                f"{type(feature_extractor).__name__} does not take raw waveforms; the audio task supports "
                "wav2vec2-family feature extractors (wav2vec2, HuBERT, WavLM, data2vec-audio)."
            )
        self.feature_extractor = feature_extractor
        self.send_mask = bool(feature_extractor.return_attention_mask or always_mask)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        extractor = self.feature_extractor
        clips = [np.asarray(example["input_values"], dtype=np.float32) for example in examples]
        normalised = extractor(clips, sampling_rate=extractor.sampling_rate)["input_values"]
        batch = extractor.pad(
            {"input_values": normalised}, padding="longest", return_attention_mask=True, return_tensors="pt"
        )
        if not self.send_mask:
            del batch["attention_mask"]
        batch["labels"] = torch.tensor([int(example["labels"]) for example in examples], dtype=torch.long)
        return dict(batch)


class AudioClassificationTask(ClassificationTask):
    """Clips → features (decoded, resampled, training-only crop and augmentation) → pooled prediction."""

    display_columns = ("file", "speaker")

    def __init__(self, data_args, audio_args: AudioArguments, feature_extractor):
        self.data_args = data_args
        self.audio_args = audio_args
        self.feature_extractor = feature_extractor
        self.sampling_rate = int(feature_extractor.sampling_rate)
        self.skipped_rows: list[dict[str, str]] = []
        self.split_method = "given"
        listings, label_names = self._load_listings()
        super().__init__(label_names)
        self.listings = listings
        self.data_collator = AudioCollator(feature_extractor, always_mask=audio_args.head == "pooled")

    # ----- listing and splitting (no audio is read yet) -----

    def _load_listings(self) -> tuple[dict[str, Dataset], list[str]]:
        data_args = self.data_args
        if data_args.data_dir and (data_args.dataset_name or data_args.train_file):
            raise ValueError("Give either --data_dir (ShEMO folder) or --dataset_name/--train_file, not both.")
        if data_args.data_dir:
            rows, bad = list_shemo_folder(data_args.data_dir)
            self._skip_or_fail([{"split": "listing", **item} for item in bad])
            if not rows:
                raise BadInputError(f"--data_dir {data_args.data_dir}: no usable ShEMO file names.")
            label_names = list(SHEMO_EMOTIONS.values())
            return self._split(_pool_listing(rows), label_names), label_names
        if data_args.dataset_name:
            return self._hub_listings()
        splits = limit_splits(load_splits(data_args, lambda path, split: _pool_listing(read_clip_csv(path))), data_args)
        label_names = sorted({label for split in splits.values() for label in split["label"]})
        listings = {name: self._with_label_ids(split, label_names) for name, split in splits.items()}
        if set(listings) == {"train"}:
            return self._split(listings["train"], label_names, encoded=True), label_names
        if "train" in listings:
            self._require_labels(listings["train"], "training split")
        return listings, label_names

    def _hub_listings(self) -> tuple[dict[str, Dataset], list[str]]:
        audio_args = self.audio_args
        splits = limit_splits(load_splits(self.data_args, read_local=lambda path, split: None), self.data_args)
        first = next(iter(splits.values()))
        for column in (audio_args.audio_column, audio_args.label_column):
            if column not in first.column_names:
                raise BadInputError(
                    f"--dataset_name {self.data_args.dataset_name}: no column {column!r} (columns: {first.column_names}); "
                    "set --audio_column / --label_column."
                )
        speaker_column = audio_args.speaker_column or next((c for c in SPEAKER_COLUMNS if c in first.column_names), None)
        if speaker_column is not None and speaker_column not in first.column_names:
            raise BadInputError(f"--speaker_column {speaker_column!r} is not a column of the dataset ({first.column_names}).")
        label_feature = first.features[audio_args.label_column]
        if isinstance(label_feature, datasets.ClassLabel):
            label_names = list(label_feature.names)
        else:
            label_names = sorted(
                {str(label) for split in splits.values() for label in split[audio_args.label_column] if label is not None}
            )
        audio_column = audio_args.audio_column
        listings = {}
        for name, split in splits.items():
            if isinstance(split.features[audio_column], datasets.Audio):
                # Decoding is ours (soundfile + soxr), so that every failure names its clip.
                split = split.cast_column(audio_column, datasets.Audio(decode=False))

            def describe(batch, rows, split_name=name):
                audio = batch[audio_column]
                labels = batch[audio_args.label_column]
                if isinstance(label_feature, datasets.ClassLabel):
                    labels = [label_names[label] if label is not None and label >= 0 else None for label in labels]
                return {
                    "file": [(item.get("path") if isinstance(item, dict) else item) or f"{split_name} row {row}"
                             for item, row in zip(audio, rows)],
                    "label": [None if label is None else str(label) for label in labels],
                    "speaker": [str(s) for s in batch[speaker_column]] if speaker_column else [""] * len(rows),
                }

            listing = split.map(
                describe, batched=True, with_indices=True,
                remove_columns=[column for column in split.column_names if column != audio_column],
                # Explicit types: a reused column name (label) would otherwise keep its ClassLabel type.
                features=datasets.Features({
                    audio_column: split.features[audio_column], "file": datasets.Value("string"),
                    "label": datasets.Value("string"), "speaker": datasets.Value("string"),
                }),
                desc=f"Listing {name} clips",
            )
            if audio_column != "audio":
                listing = listing.rename_column(audio_column, "audio")
            listings[name] = self._with_label_ids(listing, label_names)
        if set(listings) == {"train"}:
            return self._split(listings["train"], label_names, encoded=True), label_names
        if "train" in listings:
            self._require_labels(listings["train"], "training split")
        return listings, label_names

    def _with_label_ids(self, listing: Dataset, label_names: list[str]) -> Dataset:
        ids = {name: index for index, name in enumerate(label_names)}
        # -100: no label (an unlabelled test split); the loss ignores it and scoring leaves it out.
        return listing.add_column("labels", [ids[label] if label is not None else -100 for label in listing["label"]])

    def _require_labels(self, listing: Dataset, what: str) -> None:
        missing = [file for file, label in zip(listing["file"], listing["labels"]) if label < 0]
        if missing:
            raise BadInputError(
                f"{len(missing)} clip(s) of the {what} have no label (first: {missing[0]}); label them or leave them out."
            )

    def _split(self, pool: Dataset, label_names: list[str], encoded: bool = False) -> dict[str, Dataset]:
        audio_args = self.audio_args
        if not encoded:
            pool = self._with_label_ids(pool, label_names)
        self._require_labels(pool, "data to split")
        speakers = pool["speaker"]
        has_speakers = all(speakers)
        indices = split_pool(
            audio_args.split, pool["labels"], speakers if has_speakers else None,
            audio_args.validation_fraction, audio_args.test_fraction, audio_args.split_seed,
        )
        self.split_method = audio_args.split
        # A seeded order, so that --max_*_samples ("the first N") takes a sample of every split.
        order = np.random.default_rng(audio_args.split_seed)
        listings = {name: pool.select(order.permutation(rows)) for name, rows in indices.items()}
        limits = {"train": self.data_args.max_train_samples, "validation": self.data_args.max_eval_samples,
                  "test": self.data_args.max_predict_samples}
        return {
            name: listing.select(range(min(len(listing), limits[name]))) if limits[name] else listing
            for name, listing in listings.items()
        }

    def _skip_or_fail(self, bad: list[dict[str, str]]) -> None:
        """Stop on unusable clips (each {"split", "file", "reason"}), or skip them with --skip_bad_rows."""
        if not bad:
            return
        if not self.data_args.skip_bad_rows:
            shown = "\n  ".join(item["reason"] for item in bad[:5])
            more = f"\n  ... and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise BadInputError(
                f"{len(bad)} unusable clip(s):\n  {shown}{more}\n"
                "Fix or remove them, or pass --skip_bad_rows to leave them out (listed in skipped_rows.json)."
            )
        logger.warning("Skipping %d unusable clip(s) (listed in skipped_rows.json).", len(bad))
        self.skipped_rows += bad

    # ----- class balance -----

    def training_label_counts(self) -> np.ndarray:
        """Clips per class in the training split as the model will see it (after oversampling)."""
        counts = np.bincount(np.asarray(self.listings["train"]["labels"]), minlength=len(self.label_names))
        if self.audio_args.oversample:
            counts = np.where(counts > 0, counts.max(), 0)
        return counts

    def class_weights(self) -> list[float]:
        """Inverse-frequency weights n / (classes · n_c) of the training split (1 for absent classes)."""
        if "train" not in self.listings:
            raise BadInputError("Class weights need a training split; give training data.")
        counts = self.training_label_counts()
        present = counts > 0
        weights = np.ones(len(counts))
        weights[present] = counts[present].sum() / (present.sum() * counts[present])
        return weights.round(6).tolist()

    def _oversampled(self, labels: np.ndarray) -> np.ndarray:
        """Row indices that repeat each class's rows up to the largest class (seeded)."""
        rng = np.random.default_rng(self.audio_args.split_seed)
        largest = np.bincount(labels).max()
        rows = []
        for label in np.unique(labels):
            members = rng.permutation(np.flatnonzero(labels == label))
            rows.append(np.resize(members, largest))
        return rng.permutation(np.concatenate(rows))

    # ----- features -----

    def _decode(self, split: str, listing: Dataset) -> Dataset:
        audio_args, data_args = self.audio_args, self.data_args
        trim_top_db = audio_args.trim_top_db if audio_args.trim_silence else None
        content = [listing._fingerprint]
        if "path" in listing.column_names:
            for path in listing["path"]:
                stat = Path(path).stat() if path and Path(path).is_file() else None
                content.append((path, stat.st_size, stat.st_mtime_ns) if stat else (path, None))
        key = Hasher.hash((content, self.sampling_rate, trim_top_db, DECODE_VERSION))
        cache_root = Path(data_args.dataset_cache_dir or datasets.config.HF_DATASETS_CACHE) / "hf_tasks_audio"
        cache_root.mkdir(parents=True, exist_ok=True)
        columns = [c for c in listing.column_names if c not in ("file", "labels", "speaker")]
        return listing.map(
            _decode_row,
            fn_kwargs={"rate": self.sampling_rate, "trim_top_db": trim_top_db},
            remove_columns=columns,
            features=DECODED_FEATURES,
            num_proc=data_args.preprocessing_num_workers,
            cache_file_name=str(cache_root / f"{split}-{key}.arrow"),
            load_from_cache_file=not data_args.overwrite_cache,
            new_fingerprint=key,
            writer_batch_size=64,
            desc=f"Decoding {split} clips at {self.sampling_rate} Hz",
        )

    def build_features(self, training_args) -> dict[str, Dataset]:
        with training_args.main_process_first(desc="decoding audio"):
            decoded = {split: self._decode(split, listing) for split, listing in self.listings.items()}
        errors = {split: clips["error"] for split, clips in decoded.items()}
        self._skip_or_fail([
            {"split": split, "file": file, "reason": error}
            for split, clips in decoded.items() for file, error in zip(clips["file"], errors[split]) if error
        ])
        usable = {
            split: clips.select([row for row, error in enumerate(errors[split]) if not error])
            for split, clips in decoded.items()
        }
        self.conversions = self._conversions(usable)
        self._log_conversions()
        if training_args.process_index == 0:
            self.write_data_report(Path(training_args.output_dir), usable)

        features = {}
        model_columns = ["input_values", "labels"]
        if "train" in usable:
            train = usable["train"].select_columns(model_columns)
            if self.audio_args.oversample:
                train = train.select(self._oversampled(np.asarray(train["labels"])))
            settings = self.audio_args.augment_settings()
            augmenter = Augmenter(settings, self.sampling_rate) if settings.active else None
            max_samples = (
                int(round(self.audio_args.max_duration * self.sampling_rate)) if self.audio_args.max_duration else None
            )
            features["train"] = train.with_transform(TrainingClips(augmenter, max_samples))
        for split in ("validation", "test"):
            if split in usable:
                features[split] = usable[split].select_columns(model_columns).with_format("numpy")
                self.raw[split] = usable[split].select_columns(["file", "speaker", "labels"])
        return features

    # ----- what was done to the data -----

    def _conversions(self, usable: dict[str, Dataset]) -> dict[str, Any]:
        rates, channels, trimmed, clips = Counter(), Counter(), 0, 0
        for split in usable.values():
            clips += len(split)
            rates.update(int(rate) for rate in split["source_rate"] if rate != self.sampling_rate)
            channels.update(int(count) for count in split["source_channels"] if count != 1)
            trimmed += int(np.sum(split["trimmed_samples"])) if len(split) else 0
        return {
            "target_rate": self.sampling_rate,
            "clips": clips,
            "resampled_from_rate": {str(rate): count for rate, count in sorted(rates.items())},
            "mixed_to_mono_from_channels": {str(count): n for count, n in sorted(channels.items())},
            "trimmed_seconds": round(trimmed / self.sampling_rate, 3),
        }

    def _log_conversions(self) -> None:
        conversions = self.conversions
        resampled = sum(conversions["resampled_from_rate"].values())
        mixed = sum(conversions["mixed_to_mono_from_channels"].values())
        if resampled:
            logger.info("Resampled %d clip(s) to %d Hz (from %s).", resampled, self.sampling_rate,
                        ", ".join(f"{n} at {rate} Hz" for rate, n in conversions["resampled_from_rate"].items()))
        if mixed:
            logger.info("Mixed %d multi-channel clip(s) down to mono.", mixed)
        if conversions["trimmed_seconds"]:
            logger.info("Trimmed %.1f s of leading/trailing silence.", conversions["trimmed_seconds"])

    def split_report(self, usable: dict[str, Dataset]) -> dict[str, Any]:
        """The split as written to split.json: method, seed, fractions, and every clip's split."""
        report: dict[str, Any] = {
            "method": self.split_method,
            "seed": self.audio_args.split_seed if self.split_method != "given" else None,
            "validation_fraction": self.audio_args.validation_fraction if self.split_method != "given" else None,
            "test_fraction": self.audio_args.test_fraction if self.split_method != "given" else None,
            "label_names": self.label_names,
            "splits": {},
        }
        for split, clips in usable.items():
            labels = np.asarray(clips["labels"])
            report["splits"][split] = {
                "clips": len(clips),
                "class_counts": {name: int((labels == index).sum()) for index, name in enumerate(self.label_names)},
                "speakers": sorted({speaker for speaker in clips["speaker"] if speaker}),
                "files": [
                    {"file": file, "label": self.label_names[label] if label >= 0 else None, "speaker": speaker}
                    for file, label, speaker in zip(clips["file"], labels.tolist(), clips["speaker"])
                ],
            }
        return report

    def write_data_report(self, output_dir: Path, usable: dict[str, Dataset]) -> list[Path]:
        """`split.json` and `audio_conversions.json` in the run folder (main process only)."""
        output_dir.mkdir(parents=True, exist_ok=True)
        paths = [output_dir / "split.json", output_dir / "audio_conversions.json"]
        paths[0].write_text(json.dumps(self.split_report(usable), ensure_ascii=False, indent=1), encoding="utf-8")
        paths[1].write_text(json.dumps(self.conversions, indent=2), encoding="utf-8")
        return paths


def load_audio_classifier(model_args, audio_args: AudioArguments, task: AudioClassificationTask):
    """The model `--head` asks for, with labels, class weights and freezing applied.

    `auto` loads the checkpoint's `AutoModelForAudioClassification` (also a saved pooled classifier);
    `pooled` puts the seed's head on the encoder of `--model_name_or_path` (or of `--config_name`,
    randomly initialised).
    """
    from transformers import AutoModelForAudioClassification

    from hf_tasks.modeling.audio import PooledAudioClassifier, PooledAudioClassifierConfig
    from hf_tasks.modeling.auto import load_config, load_model

    labels = label_maps(task.label_names)
    weights = task.class_weights() if audio_args.class_weighted_loss else None
    takes_mask = bool(task.feature_extractor.return_attention_mask)
    if takes_mask and getattr(load_config(model_args), "feat_extract_norm", None) == "group":
        logger.warning(
            "The feature extractor asks for an attention mask, but the encoder's feature encoder uses group norm "
            "(such checkpoints were trained without masks); following the feature extractor. Set "
            "return_attention_mask to false in its preprocessor_config.json if that is wrong."
        )
    if audio_args.head == "auto":
        config = load_config(model_args)
        if isinstance(config, PooledAudioClassifierConfig):
            model = load_model(AutoModelForAudioClassification, model_args, **labels, class_weights=weights,
                               encoder_takes_attention_mask=takes_mask)
        elif weights is not None:
            raise BadInputError(
                "--class_weighted_loss needs --head pooled (the stock audio classification heads compute an "
                "unweighted loss); or balance with --oversample."
            )
        else:
            model = load_model(AutoModelForAudioClassification, model_args, **labels)
    else:
        config = PooledAudioClassifierConfig(
            encoder=load_config(model_args),
            head_hidden_size=audio_args.head_hidden_size,
            head_dropout=audio_args.head_dropout,
            encoder_takes_attention_mask=takes_mask,
            class_weights=weights,
            **labels,
        )
        model = PooledAudioClassifier.from_encoder(
            model_args.model_name_or_path, config, **model_args.pretrained_kwargs()
        )
    # The mask follows the model, not --head: `--head auto` also loads a saved pooled classifier.
    task.data_collator = AudioCollator(task.feature_extractor, always_mask=isinstance(model, PooledAudioClassifier))
    if audio_args.freeze_feature_encoder:
        if not hasattr(model, "freeze_feature_encoder"):
            raise BadInputError(f"{type(model).__name__} has no feature encoder to freeze; pass --freeze_feature_encoder false.")
        model.freeze_feature_encoder()
    return model
