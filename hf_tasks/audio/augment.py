"""On-the-fly augmentation and random cropping of training clips.

Each transform is drawn independently per clip with its own probability, so every epoch sees a
different version of every training clip; validation and test clips are never touched (the audio
task applies this only to the training split).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class AugmentSettings:
    """Probabilities (0 turns a transform off) and ranges of the random transforms."""

    pitch_shift_prob: float = field(default=0.0, metadata={"help": "Chance of a random pitch shift per training clip."})
    pitch_shift_semitones: float = field(
        default=2.0,
        metadata={"help": "Largest pitch shift, up or down, in semitones."},
    )
    time_stretch_prob: float = field(
        default=0.0,
        metadata={"help": "Chance of a random tempo change per training clip."},
    )
    time_stretch_min: float = field(
        default=0.9,
        metadata={"help": "Slowest tempo factor (below 1 lengthens the clip)."},
    )
    time_stretch_max: float = field(default=1.1, metadata={"help": "Fastest tempo factor."})
    gain_prob: float = field(
        default=0.0,
        metadata={"help": "Chance of a random gain change (no effect when the feature extractor normalises clips: "
                          "do_normalize)."},
    )
    gain_db: float = field(default=6.0, metadata={"help": "Largest gain change, up or down, in dB."})
    noise_prob: float = field(default=0.0, metadata={"help": "Chance of added white noise per training clip."})
    noise_snr_min: float = field(default=15.0, metadata={"help": "Lowest signal-to-noise ratio of the noise, dB."})
    noise_snr_max: float = field(default=35.0, metadata={"help": "Highest signal-to-noise ratio of the noise, dB."})

    def __post_init__(self):
        for name in ("pitch_shift_prob", "time_stretch_prob", "gain_prob", "noise_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"--{name} must lie in [0, 1], got {getattr(self, name)}.")
        if not 0 < self.time_stretch_min <= self.time_stretch_max:
            raise ValueError(
                f"--time_stretch_min/--time_stretch_max must satisfy 0 < min <= max, got "
                f"{self.time_stretch_min}, {self.time_stretch_max}."
            )
        if self.noise_snr_min > self.noise_snr_max:
            raise ValueError(f"--noise_snr_min ({self.noise_snr_min}) exceeds --noise_snr_max ({self.noise_snr_max}).")

    @property
    def active(self) -> bool:
        return any(p > 0 for p in (self.pitch_shift_prob, self.time_stretch_prob, self.gain_prob, self.noise_prob))


def random_crop(samples: np.ndarray, max_samples: int | None, rng: np.random.Generator) -> np.ndarray:
    """A random window of at most `max_samples` (the whole clip when it is shorter or no limit is set)."""
    if max_samples is None or samples.size <= max_samples:
        return samples
    start = int(rng.integers(0, samples.size - max_samples + 1))
    return samples[start : start + max_samples]


class Augmenter:
    """Random pitch shift, time stretch, gain and additive white noise for one clip at a time."""

    def __init__(self, settings: AugmentSettings, sampling_rate: int):
        self.settings = settings
        self.sampling_rate = sampling_rate

    @property
    def longest_stretch(self) -> float:
        """How much longer a clip can get (time stretch below 1 slows it down)."""
        return 1.0 / self.settings.time_stretch_min if self.settings.time_stretch_prob > 0 else 1.0

    def __call__(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        import librosa

        settings = self.settings
        samples = np.asarray(samples, dtype=np.float32)
        # librosa's phase vocoder needs a few STFT frames; shorter clips skip pitch and tempo changes.
        long_enough = samples.size >= 2048
        if long_enough and rng.random() < settings.time_stretch_prob:
            rate = rng.uniform(settings.time_stretch_min, settings.time_stretch_max)
            samples = librosa.effects.time_stretch(samples, rate=rate)
        if long_enough and rng.random() < settings.pitch_shift_prob:
            steps = rng.uniform(-settings.pitch_shift_semitones, settings.pitch_shift_semitones)
            samples = librosa.effects.pitch_shift(samples, sr=self.sampling_rate, n_steps=steps, res_type="soxr_hq")
        if rng.random() < settings.gain_prob:
            samples = samples * np.float32(10.0 ** (rng.uniform(-settings.gain_db, settings.gain_db) / 20.0))
        if rng.random() < settings.noise_prob:
            snr_db = rng.uniform(settings.noise_snr_min, settings.noise_snr_max)
            power = float(np.mean(samples.astype(np.float64) ** 2))
            noise_std = np.sqrt(power / 10.0 ** (snr_db / 10.0))
            samples = samples + rng.normal(0.0, noise_std, samples.size).astype(np.float32)
        return np.asarray(samples, dtype=np.float32)
