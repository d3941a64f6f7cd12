"""Audio classification (speech emotion recognition on ShEMO, or any labelled clips).

The task is built from clip listings (`hf_tasks.data.audio_clips`: a ShEMO folder, `path,label`
tables or a hub audio dataset, already split) and a flag saying whether the model takes an attention
mask (`hf_tasks.modeling.audio_classifier.takes_attention_mask`), so it is made after the model and
never changed by it.

Clips are decoded once, mixed down to mono and resampled to the feature extractor's rate (cached by
`datasets`; what was converted goes to `audio_conversions.json` and the log); an unreadable or empty
clip is a bad row (the run's `bad_rows`: stop naming it, or skip it with --skip_bad_rows). Only the
training split is randomly cropped to `--max_duration` and augmented, on the fly, every epoch;
validation and test clips are used whole and untouched. The split and every clip's place go to
`split.json` in the run folder. Class balance: `--oversample` (augmented repeats of rarer classes in
training) or `--class_weighted_loss` (pooled head).
"""

from __future__ import annotations

import json
import logging
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
from hf_tasks.audio.io import UnusableClip, read_clip
from hf_tasks.data.audio_clips import ClipListings
from hf_tasks.data.bad_rows import BadRows, RowProblem
from hf_tasks.data.sources import class_names_of
from hf_tasks.options import DataArguments
from hf_tasks.tasks.classification import ClassificationTask

logger = logging.getLogger(__name__)

#: Bump when decoding changes, so cached decoded clips are not reused.
DECODE_VERSION = 2


@dataclass
class AudioArguments:
    """How the task reads clips: training crops, the longest clip, silence, class balance. The recipe gives the
    data source and split (`ClipArguments`) and the augmentation (`AugmentSettings`) as groups of their own."""

    max_duration: float | None = field(
        default=6.0, metadata={"help": "Seconds of a random crop of each training clip (evaluation uses whole clips)."}
    )
    max_clip_seconds: float | None = field(
        default=60.0, metadata={"help": "Longest clip read, in any split, checked from the file's header before "
                                        "decoding; a longer one is a bad row (named; --skip_bad_rows skips it)."}
    )
    trim_silence: bool = field(default=False, metadata={"help": "Cut leading and trailing silence of every clip."})
    trim_top_db: float = field(default=30.0, metadata={"help": "Silence = this many dB below the clip's peak."})
    oversample: bool = field(
        default=False,
        metadata={"help": "Repeat training clips of rarer classes up to the largest class "
                          "(each repeat augmented anew)."},
    )
    generate_synthetic_data: bool = field(
        default=False,
        metadata={"help": "Write synthetic ShEMO-style tone clips into --data_dir first "
                          "(a new or empty folder, or one it wrote; a folder of your own data is read instead)."},
    )

    def __post_init__(self):
        if self.max_duration is not None and self.max_duration <= 0:
            raise ValueError(f"--max_duration must be positive seconds, got {self.max_duration}.")
        if self.max_clip_seconds is not None and self.max_clip_seconds <= 0:
            raise ValueError(f"--max_clip_seconds must be positive seconds, got {self.max_clip_seconds}.")


def _decode_row(row: dict[str, Any], *, rate: int, trim_top_db: float | None,
                max_seconds: float | None) -> dict[str, Any]:
    """One decoded clip and its label id for the model (-100, the loss's ignore index, for none);
    problems are returned, not raised, so every unusable clip is reported at once."""
    audio = row.get("audio")
    stored = row.get("path") or (audio if isinstance(audio, str) else audio.get("bytes") or audio.get("path"))
    labels = row["label"] if row["label"] >= 0 else -100
    try:
        clip = read_clip(stored, row["file"], rate, trim_top_db=trim_top_db, max_seconds=max_seconds)
    except UnusableClip as error:
        return {"labels": labels, "input_values": np.zeros(0, np.float32), "source_rate": 0, "source_channels": 0,
                "trimmed_samples": 0, "error": error.problem}
    return {"labels": labels, "input_values": clip.samples, "source_rate": clip.source_rate,
            "source_channels": clip.source_channels, "trimmed_samples": clip.trimmed_samples, "error": ""}


DECODED_FEATURES = datasets.Features({
    "file": datasets.Value("string"),
    "labels": datasets.Value("int64"),
    "speaker": datasets.Value("string"),
    "source": datasets.Value("string"),
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

    feature_unit = "clips"
    work_unit = "audio_seconds"

    display_columns = ("file", "speaker")
    example_id_column = "file"

    def __init__(self, data: ClipListings, feature_extractor, data_args: DataArguments, audio_args: AudioArguments,
                 augment: AugmentSettings, *, attention_mask: bool, bad_rows: BadRows):
        """`data`: clip listings by split (`hf_tasks.data.audio_clips.load`); `attention_mask`: whether
        the model's batches carry one (`hf_tasks.modeling.audio_classifier.takes_attention_mask`);
        `bad_rows`: the run's log, which clips that cannot be decoded go to."""
        super().__init__(class_names_of(data, "label"))
        self.listings = data
        self.split_record = data.split_record
        self.feature_extractor = feature_extractor
        self.audio_args = audio_args
        self.augment = augment
        self.data_args = data_args
        self.bad_rows = bad_rows
        self.sampling_rate = int(feature_extractor.sampling_rate)
        self.data_collator = AudioCollator(feature_extractor, always_mask=attention_mask)
        self.data_report: dict[str, str] = {}

    def batch_work(self, inputs):
        """Seconds of audio: the clips' own samples where the batch has an attention mask, else every sample the
        model read (a batch without a mask pads with silence the model cannot tell from the clip)."""
        mask = inputs.get("attention_mask")
        samples = mask.sum() if mask is not None else inputs["input_values"].numel()
        return samples / self.sampling_rate

    @staticmethod
    def _oversampled(labels: np.ndarray, seed: int) -> np.ndarray:
        """Row indices that repeat each class's rows up to the largest class (seeded by the run's --seed)."""
        rng = np.random.default_rng(seed)
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
        key = Hasher.hash((content, self.sampling_rate, trim_top_db, audio_args.max_clip_seconds, DECODE_VERSION))
        cache_root = Path(data_args.dataset_cache_dir or datasets.config.HF_DATASETS_CACHE) / "hf_tasks_audio"
        cache_root.mkdir(parents=True, exist_ok=True)
        columns = [c for c in listing.column_names if c not in ("file", "speaker", "source")]
        return listing.map(
            _decode_row,
            fn_kwargs={"rate": self.sampling_rate, "trim_top_db": trim_top_db,
                       "max_seconds": audio_args.max_clip_seconds},
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
        self._settle_unusable_clips(decoded, errors)
        usable = {
            split: clips.select([row for row, error in enumerate(errors[split]) if not error])
            for split, clips in decoded.items()
        }
        self.conversions = self._conversions(usable)
        self._log_conversions()
        self.data_report = {
            "split.json": json.dumps(self.split_report(usable), ensure_ascii=False, indent=1),
            "audio_conversions.json": json.dumps(self.conversions, indent=2),
        }

        features = {}
        model_columns = ["input_values", "labels"]
        if "train" in usable:
            train = usable["train"].select_columns(model_columns)
            if self.audio_args.oversample:
                train = train.select(self._oversampled(np.asarray(train["labels"]), training_args.seed))
            augmenter = Augmenter(self.augment, self.sampling_rate) if self.augment.active else None
            max_samples = (
                int(round(self.audio_args.max_duration * self.sampling_rate)) if self.audio_args.max_duration else None
            )
            features["train"] = train.with_transform(TrainingClips(augmenter, max_samples))
        for split in ("validation", "test"):
            if split in usable:
                features[split] = usable[split].select_columns(model_columns).with_format("numpy")
                self.raw[split] = usable[split].select_columns(["file", "speaker", "labels"])
        return features

    def _settle_unusable_clips(self, decoded: dict[str, Dataset], errors: dict[str, list[str]]) -> None:
        """Stop naming the clips that could not be decoded, or skip them with --skip_bad_rows."""
        problems: dict[str, list[RowProblem]] = {}
        for split, clips in decoded.items():
            rows = [row for row, error in enumerate(errors[split]) if error]
            for row in clips.select(rows).select_columns(["file", "source", "error"]) if rows else ():
                problems.setdefault(row["source"], []).append(
                    RowProblem("clip", row["file"], row["error"], {"split": split}))
        for source, found in problems.items():
            self.bad_rows.settle(source, found, "fix or remove the clips")

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
        report: dict[str, Any] = {**self.split_record, "label_names": self.label_names, "splits": {}}
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

    def run_files(self) -> dict[str, str]:
        """`split.json` (every clip's split) and `audio_conversions.json` for the run folder."""
        return self.data_report
