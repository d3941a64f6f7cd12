"""Synthetic ShEMO-style clips for the offline demo and tests, and the tiny HuBERT folder.

Each emotion is a tone of its own pitch (with two overtones, a fade in/out and a little noise);
each speaker shifts every pitch by up to ±3 %, each clip by up to ±2 % more, so the classes stay
apart but no two clips are alike. Files follow ShEMO's naming (`F03A02.wav`: gender, speaker,
emotion letter, utterance) under `female/` and `male/`. Like ShEMO, fear is the rare class. Some
speakers are recorded at 22.05 or 44.1 kHz and one in stereo, so loading has to convert them.

    python -m hf_tasks.samples.shemo runs/shemo-synthetic     # write the clips (about 3 MB)
    python -m hf_tasks.samples.shemo --tiny_model             # rewrite hf_tasks/samples/tiny-hubert/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile

from hf_tasks.errors import OneLineArgumentParser, one_line_errors
from hf_tasks.samples.owned_folder import write_owned_folder

SAMPLES = Path(__file__).parent
TINY_HUBERT = SAMPLES / "tiny-hubert"

#: Base pitch (Hz) per ShEMO emotion letter: neighbours are about 30 % (4.5 semitones) apart.
EMOTION_PITCH = {"A": 200.0, "F": 260.0, "H": 340.0, "N": 440.0, "S": 570.0, "W": 740.0}
#: (speaker, sample rate, channels): most at 16 kHz mono, some needing conversion.
SPEAKERS = (
    ("F01", 16000, 1), ("F02", 22050, 1), ("F03", 16000, 1), ("F04", 44100, 2),
    ("M01", 16000, 1), ("M02", 16000, 1), ("M03", 22050, 1), ("M04", 16000, 1),
)


def tone(pitch: float, seconds: float, rate: int, rng: np.random.Generator) -> np.ndarray:
    """A tone at `pitch` with overtones, a 50 ms fade in and out, and faint noise."""
    t = np.arange(int(seconds * rate)) / rate
    phase = rng.uniform(0, 2 * np.pi)
    wave = sum(weight * np.sin(2 * np.pi * pitch * harmonic * t + phase)
               for harmonic, weight in ((1, 1.0), (2, 0.5), (3, 0.25)))
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.05)
    wave = wave * fade * rng.uniform(0.2, 0.5) / 1.75
    return (wave + rng.normal(0, 0.005, t.size)).astype(np.float32)


def write_synthetic_shemo(
    folder: str | Path, *, utterances: int = 3, fear_utterances: int = 1, seed: int = 0
) -> Path:
    """Write the clips into `folder` and return it: a new or empty folder, or one this generator made
    (see `hf_tasks.samples.owned_folder`; anything else stops with BadInputError).

    Every speaker says `utterances` clips per emotion, `fear_utterances` for fear; clips last 0.6-1.4 s.
    """

    def write(staging: Path) -> None:
        rng = np.random.default_rng(seed)
        for speaker, rate, channels in SPEAKERS:
            speaker_shift = rng.uniform(0.97, 1.03)
            subfolder = staging / ("female" if speaker.startswith("F") else "male")
            subfolder.mkdir(exist_ok=True)
            for letter, pitch in EMOTION_PITCH.items():
                for utterance in range(1, (fear_utterances if letter == "F" else utterances) + 1):
                    clip = tone(pitch * speaker_shift * rng.uniform(0.98, 1.02), rng.uniform(0.6, 1.4), rate, rng)
                    if channels == 2:
                        clip = np.stack([clip, 0.8 * clip], axis=1)
                    soundfile.write(subfolder / f"{speaker}{letter}{utterance:02d}.wav", clip, rate, subtype="PCM_16")

    settings = {"utterances": utterances, "fear_utterances": fear_utterances, "seed": seed}
    return write_owned_folder(folder, "ShEMO", settings, write)


def write_tiny_hubert(folder: str | Path = TINY_HUBERT, *, layer_norm: bool = False) -> Path:
    """A tiny HuBERT config and its feature extractor (JSON only; recipes build the weights).

    `layer_norm=False` mirrors `facebook/hubert-base-ls960` (group norm, no attention mask);
    `layer_norm=True` mirrors the large checkpoints (layer norm, attention mask).
    """
    from transformers import HubertConfig, Wav2Vec2FeatureExtractor

    folder = Path(folder)
    config = HubertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        conv_dim=(32, 32, 32, 32),
        conv_stride=(5, 4, 4, 2),
        conv_kernel=(10, 8, 4, 2),
        # 100 frames per second and no dropout keep a CPU training step in tens of milliseconds.
        hidden_dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
        feat_proj_dropout=0.0,
        final_dropout=0.0,
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4,
        feat_extract_norm="layer" if layer_norm else "group",
        do_stable_layer_norm=layer_norm,
        mask_time_length=4,
        layerdrop=0.0,
        classifier_proj_size=32,
    )
    feature_extractor = Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True, return_attention_mask=layer_norm
    )
    config.save_pretrained(folder)
    feature_extractor.save_pretrained(folder)
    return folder


if __name__ == "__main__":
    with one_line_errors():
        parser = OneLineArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("folder", nargs="?", help="Where to write the synthetic clips.")
        parser.add_argument("--tiny_model", action="store_true", help=f"Rewrite {TINY_HUBERT}.")
        arguments = parser.parse_args()
        if arguments.tiny_model:
            print(write_tiny_hubert())
        if arguments.folder:
            print(write_synthetic_shemo(arguments.folder))
        if not (arguments.tiny_model or arguments.folder):
            parser.error("give a folder for the clips and/or --tiny_model")
