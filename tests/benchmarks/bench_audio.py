"""Audio preprocessing throughput (clips per second) on clips of ShEMO length (3-4 s).

    python tests/benchmarks/bench_audio.py [--clips 60]

Measures, on one process: reading + mixing down + resampling 44.1 kHz stereo and 48 kHz mono WAV
files to 16 kHz (`hf_tasks.audio.io.read_clip`); the audio task's whole decode step over a ShEMO-style
folder (listing, reading, resampling, writing the `datasets` cache); each augmentation alone and the
training transform with the HuBERT-base config's settings (crop to 6 s; pitch shift, time stretch
and noise each with probability 0.3); and the collator (per-clip normalisation + padding,
batches of 8). Writes results/audio.json and appends a row to results/audio.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from hf_tasks.audio.augment import Augmenter, AugmentSettings
from hf_tasks.audio.io import read_clip
from tests.benchmarks.record import record

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


def best_rate(count: int, run, repeats: int = 3) -> float:
    """Items per second of `run()` (which handles `count` items), best of `repeats`."""
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - began)
    return round(count / min(seconds), 1)


def task_decode_rate(folder: Path, cache: Path) -> float:
    """Clips per second of the audio task's decode step (listing + read + resample + cache write)."""
    from transformers import TrainingArguments, Wav2Vec2FeatureExtractor

    from hf_tasks.args import DataArguments
    from hf_tasks.tasks.audio import AudioArguments, AudioClassificationTask

    extractor = Wav2Vec2FeatureExtractor(sampling_rate=RATE)
    seconds, clips = [], 0
    for repeat in range(3):
        data_args = DataArguments(data_dir=str(folder), dataset_cache_dir=str(cache / str(repeat)))
        task = AudioClassificationTask(data_args, AudioArguments(split="stratified", validation_fraction=0.2, test_fraction=0.2), extractor)
        began = time.perf_counter()
        features = task.features(TrainingArguments(output_dir=str(cache / "run"), use_cpu=True, report_to=[]))
        seconds.append(time.perf_counter() - began)
        clips = sum(len(split) for split in features.values())
    return round(clips / min(seconds), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=60)
    args = parser.parse_args()
    import torch
    from transformers import Wav2Vec2FeatureExtractor

    from hf_tasks.tasks.audio import AudioCollator, TrainingClips

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as workspace:
        workspace = Path(workspace)
        (workspace / "clips").mkdir()
        paths = write_clips(workspace / "clips", args.clips)
        stereo_44k, mono_48k = paths[0::2], paths[1::2]
        figures = {
            "clips": args.clips,
            "mean_seconds": round(float(np.mean([soundfile.info(p).duration for p in paths])), 2),
            "read_44k_stereo_to_16k": best_rate(len(stereo_44k), lambda: [read_clip(p, p.name, RATE) for p in stereo_44k]),
            "read_48k_mono_to_16k": best_rate(len(mono_48k), lambda: [read_clip(p, p.name, RATE) for p in mono_48k]),
            "task_decode_with_cache_write": task_decode_rate(workspace / "clips", workspace / "cache"),
        }
        clips16k = [read_clip(p, p.name, RATE).samples for p in paths]

    rng = np.random.default_rng(0)
    for name, settings in {
        "pitch_shift": AugmentSettings(pitch_shift_prob=1.0),
        "time_stretch": AugmentSettings(time_stretch_prob=1.0),
        "gain": AugmentSettings(gain_prob=1.0),
        "noise": AugmentSettings(noise_prob=1.0),
    }.items():
        augmenter = Augmenter(settings, RATE)
        augmenter(clips16k[0], rng)  # librosa compiles its phase vocoder on first use
        figures[f"augment_{name}"] = best_rate(len(clips16k), lambda: [augmenter(clip, rng) for clip in clips16k])

    hubert_base = AugmentSettings(pitch_shift_prob=0.3, time_stretch_prob=0.3, noise_prob=0.3)
    transform = TrainingClips(Augmenter(hubert_base, RATE), max_samples=6 * RATE)
    batch = {"input_values": [clip.tolist() for clip in clips16k], "labels": [0] * len(clips16k)}
    figures["training_transform_hubert_base"] = best_rate(len(clips16k), lambda: transform(batch))

    collator = AudioCollator(Wav2Vec2FeatureExtractor(sampling_rate=RATE), always_mask=True)
    examples = [{"input_values": clip, "labels": 0} for clip in clips16k]
    batches = [examples[start : start + 8] for start in range(0, len(examples), 8)]
    figures["collate_batches_of_8"] = best_rate(len(examples), lambda: [collator(b) for b in batches])
    figures["unit"] = "clips/second, one process"
    record("audio", figures)


if __name__ == "__main__":
    main()
