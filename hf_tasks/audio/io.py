"""Reading one clip: decode, mix down to mono, resample to the model's rate, optionally trim silence.

Every failure is an `UnusableClip` (a `BadInputError` naming the clip) that also carries the problem
alone, so a data set with a few broken files can be reported in one go, grouped by problem (or
skipped with `--skip_bad_rows`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile
import soxr

from hf_tasks.errors import BadInputError

#: The shortest clip a wav2vec2-family feature encoder turns into one frame: 400 samples at 16 kHz.
MIN_SECONDS = 0.025


class UnusableClip(BadInputError):
    """A clip that cannot be used: `clip` names it, `problem` says why and how to fix it."""

    def __init__(self, clip: str, problem: str):
        super().__init__(f"{clip}: {problem}")
        self.clip = clip
        self.problem = problem


@dataclass
class Clip:
    """A mono float32 clip at the model's rate, and what it was before conversion."""

    samples: np.ndarray
    source_rate: int
    source_channels: int
    trimmed_samples: int = 0


def read_clip(
    source: str | Path | bytes,
    name: str,
    target_rate: int,
    *,
    trim_top_db: float | None = None,
    max_seconds: float | None = None,
) -> Clip:
    """Decode `source` (a path or the file's bytes) into a mono clip at `target_rate`.

    `name` is how errors refer to the clip. With `trim_top_db`, leading and trailing parts quieter
    than the peak minus `trim_top_db` dB are cut. A clip whose header says it lasts longer than
    `max_seconds` is refused before anything is decoded (an hour of audio is 230 MB of float32 at 16 kHz).
    """
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise UnusableClip(name, "no such file; check the path")
    try:
        with soundfile.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else str(source)) as opened:
            rate = opened.samplerate
            if max_seconds is not None and opened.frames > max_seconds * rate:
                raise UnusableClip(name, f"{opened.frames / rate:.1f} s long, over --max_clip_seconds "
                                         f"{max_seconds:g}; cut it into shorter clips or raise the limit")
            data = opened.read(dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, OSError) as error:
        # soundfile says "Error opening '<path>': <why>": the clip is named already, keep the why, so that
        # many broken clips group under one reason.
        why = str(error).rsplit("': ", 1)[-1].rstrip(".")
        raise UnusableClip(name, f"unreadable audio ({why}); re-export it as WAV, FLAC, OGG or MP3, "
                                 "or remove it") from None
    if data.shape[0] == 0:
        raise UnusableClip(name, "the clip is empty (0 samples); remove it or replace it with the real recording.")
    if not np.isfinite(data).all():
        raise UnusableClip(name, "the clip holds NaN or infinite samples; re-export it.")
    channels = data.shape[1]
    samples = data.mean(axis=1) if channels > 1 else data[:, 0]
    if rate != target_rate:
        samples = soxr.resample(samples, rate, target_rate, quality="HQ").astype(np.float32, copy=False)
    if not np.any(samples):
        raise UnusableClip(name, "every sample is zero (a silent or broken recording); remove it.")
    trimmed = 0
    if trim_top_db is not None:
        samples, trimmed = trim_silence(samples, trim_top_db)
    minimum = int(np.ceil(MIN_SECONDS * target_rate))
    if samples.size < minimum:
        raise UnusableClip(
            name, f"only {samples.size} samples at {target_rate} Hz ({samples.size / target_rate * 1000:.1f} ms); "
            f"speech encoders need at least {minimum} ({MIN_SECONDS * 1000:.0f} ms). Remove the clip."
        )
    return Clip(np.ascontiguousarray(samples, dtype=np.float32), int(rate), int(channels), trimmed)


def trim_silence(samples: np.ndarray, top_db: float) -> tuple[np.ndarray, int]:
    """`samples` without leading/trailing silence, and how many samples were cut."""
    import librosa

    kept, _ = librosa.effects.trim(samples, top_db=top_db)
    return kept, samples.size - kept.size
