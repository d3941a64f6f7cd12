"""Audio preprocessing throughput (clips per second) on clips of ShEMO length (3-4 s).

    python -m tests.benchmarks.bench_audio [--clips 60] [--rounds 5]

Measures, on one process: reading + mixing down + resampling 44.1 kHz stereo and 48 kHz mono WAV
files to 16 kHz (`hf_tasks.audio.io.read_clip`); the audio task's whole decode step over a ShEMO-style
folder (listing, reading, resampling, writing the `datasets` cache); each augmentation alone and the
training transform with the HuBERT-base config's settings (crop to 6 s; pitch shift, time stretch
and noise each with probability 0.3); and the collator (per-clip normalisation + padding,
batches of 8). The steps alternate (tests/benchmarks/abba.py: all of them in one order, then in the
reverse order, for `--rounds` rounds after a warm-up one), so a busy spell on the machine slows all
of them rather than one; each figure is the median over the rounds with its range. Writes
results/audio.json and appends a row to results/audio.md.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from hf_tasks.audio.augment import Augmenter, AugmentSettings
from hf_tasks.audio.io import read_clip
from tests.benchmarks.abba import Spread, alternate, seconds
from tests.benchmarks.record import record
from tests.caches import use_private_caches

RATE = 16000
LETTERS = "AFHNSW"


def speech_like(seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A gliding voiced tone with syllable-rate loudness changes and breath noise."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 150 + 60 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    voiced = sum(np.sin(2 * np.pi * np.cumsum(pitch * k) / rate) / k for k in (1, 2, 3, 4))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * voiced * envelope + rng.normal(0, 0.01, t.size)).astype(np.float32)


def write_clips(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """ShEMO-named clips of 3-4 s: half 44.1 kHz stereo, half 48 kHz mono."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        rate, stereo = (44100, True) if index % 2 == 0 else (48000, False)
        clip = speech_like(rng.uniform(3.0, 4.0), rate, rng)
        if stereo:
            clip = np.stack([clip, 0.9 * clip], axis=1)
        path = folder / f"{'FM'[index % 2]}{index // 12 + 1:02d}{LETTERS[index % 6]}{index % 12 + 1:02d}.wav"
        soundfile.write(path, clip, rate, subtype="PCM_16")
        paths.append(path)
    return paths


def task_decode(folder: Path, cache: Path):
    """The audio task's decode step (listing + read + resample + cache write) into a new cache each call."""
    from transformers import TrainingArguments, Wav2Vec2FeatureExtractor

    from hf_tasks.options import DataArguments
    from hf_tasks.data.bad_rows import BadRows
    from hf_tasks.data import audio_clips
    from hf_tasks.audio.augment import AugmentSettings
    from hf_tasks.data.audio_clips import ClipArguments
    from hf_tasks.tasks.audio import AudioArguments, AudioClassificationTask

    extractor = Wav2Vec2FeatureExtractor(sampling_rate=RATE)
    calls = itertools.count()

    def decode():
        data_args = DataArguments(data_dir=str(folder), dataset_cache_dir=str(cache / str(next(calls))))
        clip_args = ClipArguments(split="stratified", validation_fraction=0.2, test_fraction=0.2)
        bad_rows = BadRows(False)
        task = AudioClassificationTask(audio_clips.load(data_args, clip_args, bad_rows=bad_rows), extractor,
                                       data_args, AudioArguments(), AugmentSettings(), attention_mask=False,
                                       bad_rows=bad_rows)
        task.features(TrainingArguments(output_dir=str(cache / "run"), use_cpu=True, report_to=[]))

    return decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    use_private_caches("hf_tasks-bench-")
    import torch
    from transformers import Wav2Vec2FeatureExtractor

    from hf_tasks.tasks.audio import AudioCollator, TrainingClips

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as workspace:
        workspace = Path(workspace)
        (workspace / "clips").mkdir()
        paths = write_clips(workspace / "clips", args.clips)
        stereo_44k, mono_48k = paths[0::2], paths[1::2]
        clips16k = [read_clip(p, p.name, RATE).samples for p in paths]
        steps = {  # name → (clips handled per call, call)
            "read_44k_stereo_to_16k": (len(stereo_44k), lambda: [read_clip(p, p.name, RATE) for p in stereo_44k]),
            "read_48k_mono_to_16k": (len(mono_48k), lambda: [read_clip(p, p.name, RATE) for p in mono_48k]),
            "task_decode_with_cache_write": (len(paths), task_decode(workspace / "clips", workspace / "cache")),
        }
        for name, settings in {
            "pitch_shift": AugmentSettings(pitch_shift_prob=1.0),
            "time_stretch": AugmentSettings(time_stretch_prob=1.0),
            "gain": AugmentSettings(gain_prob=1.0),
            "noise": AugmentSettings(noise_prob=1.0),
        }.items():
            augmenter = Augmenter(settings, RATE)
            steps[f"augment_{name}"] = (len(clips16k), lambda augmenter=augmenter: [augmenter(clip, rng)
                                                                                   for clip in clips16k])
        hubert_base = AugmentSettings(pitch_shift_prob=0.3, time_stretch_prob=0.3, noise_prob=0.3)
        transform = TrainingClips(Augmenter(hubert_base, RATE), max_samples=6 * RATE)
        batch = {"input_values": [clip.tolist() for clip in clips16k], "labels": [0] * len(clips16k)}
        steps["training_transform_hubert_base"] = (len(clips16k), lambda: transform(batch))
        collator = AudioCollator(Wav2Vec2FeatureExtractor(sampling_rate=RATE), always_mask=True)
        examples = [{"input_values": clip, "labels": 0} for clip in clips16k]
        batches = [examples[start : start + 8] for start in range(0, len(examples), 8)]
        steps["collate_batches_of_8"] = (len(examples), lambda: [collator(b) for b in batches])

        # The warm-up round also lets librosa compile its phase vocoder.
        timings = alternate({name: seconds(call) for name, (_, call) in steps.items()}, rounds=args.rounds)
        figures = {
            "clips": args.clips,
            "mean_seconds": round(float(np.mean([soundfile.info(p).duration for p in paths])), 2),
            **{name: Spread.of([count / s for s in timings[name]]) for name, (count, _) in steps.items()},
            "unit": "clips/second, one process",
        }
    record("audio", figures)


if __name__ == "__main__":
    main()
