"""Reading clips: ShEMO file names, resampling, mono mix-down, silence trimming and bad files."""

import numpy as np
import pytest
import soundfile

from hf_tasks.audio.io import read_clip
from hf_tasks.data.audio_clips import list_shemo_folder, parse_shemo_name
from hf_tasks.errors import BadInputError


def sine(frequency, seconds, rate, amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_frequency(samples, rate):
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return np.fft.rfftfreq(samples.size, 1 / rate)[spectrum.argmax()]


@pytest.mark.parametrize(
    "name, gender, speaker, emotion, utterance",
    [
        ("F03A02.wav", "F", "F03", "anger", 2),
        ("male/M12W10.wav", "M", "M12", "surprise", 10),
        ("f01s05.WAV", "F", "F01", "sadness", 5),
        ("M7H1.wav", "M", "M07", "happiness", 1),
    ],
)
def test_shemo_file_names_give_gender_speaker_emotion_and_utterance(name, gender, speaker, emotion, utterance):
    parsed = parse_shemo_name(name)
    assert (parsed.gender, parsed.speaker, parsed.emotion, parsed.utterance) == (gender, speaker, emotion, utterance)


def test_every_shemo_letter_maps_to_its_emotion():
    letters = {"A": "anger", "F": "fear", "H": "happiness", "N": "neutral", "S": "sadness", "W": "surprise"}
    assert {letter: parse_shemo_name(f"M01{letter}01.wav").emotion for letter in letters} == letters


@pytest.mark.parametrize("name, fragment", [("F03X02.wav", "unknown emotion letter 'X'"),
                                            ("clip_7.wav", "not a ShEMO file name")])
def test_bad_shemo_names_are_rejected_naming_the_file(name, fragment):
    with pytest.raises(BadInputError, match=fragment) as error:
        parse_shemo_name(f"female/{name}")
    assert name in str(error.value)


def test_folder_listing_finds_wav_files_at_any_depth_and_reports_bad_names(tmp_path):
    for relative in ("female/F01A01.wav", "male/deep/er/M02N03.wav", "male/M02Q01.wav"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(tmp_path / relative, sine(200, 0.1, 16000), 16000)
    (tmp_path / "notes.txt").write_text("not audio")
    rows, bad = list_shemo_folder(tmp_path)
    assert [(row["file"], row["label"], row["speaker"]) for row in rows] == [
        ("female/F01A01.wav", "anger", "F01"), ("male/deep/er/M02N03.wav", "neutral", "M02")
    ]
    assert [problem.position for problem in bad] == ["male/M02Q01.wav"]


def test_folder_listing_never_enters_hidden_folders(tmp_path):
    """A killed `fetch shemo` leaves its staging folder (.female-XXXXXXXX) beside female/: its clips are
    copies, some cut short, and must not join the data."""
    for relative in ("female/F01A01.wav", "female/.female-k2j4h5g6/F01A01.wav", "female/._F01A02.wav",
                     ".ipynb_checkpoints/M02N03.wav"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(tmp_path / relative, sine(200, 0.1, 16000), 16000)
    rows, bad = list_shemo_folder(tmp_path)
    assert [row["file"] for row in rows] == ["female/F01A01.wav"] and bad == []


def test_missing_or_empty_folders_fail_clearly(tmp_path):
    with pytest.raises(BadInputError, match="no such folder"):
        list_shemo_folder(tmp_path / "nowhere")
    with pytest.raises(BadInputError, match="no .wav files"):
        list_shemo_folder(tmp_path)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_to_16k_keeps_a_sines_frequency_and_duration(tmp_path, rate):
    path = tmp_path / "tone.wav"
    soundfile.write(path, sine(440.0, 1.0, rate), rate, subtype="FLOAT")
    clip = read_clip(path, "tone.wav", 16000)
    assert clip.source_rate == rate and clip.source_channels == 1
    assert abs(clip.samples.size - 16000) <= 1
    assert clip.samples.dtype == np.float32
    assert peak_frequency(clip.samples, 16000) == pytest.approx(440.0, abs=1.5)
    # Amplitude survives too (no gain change from resampling), away from the edges.
    assert np.abs(clip.samples[2000:-2000]).max() == pytest.approx(0.5, abs=0.02)


def test_stereo_is_mixed_down_to_the_channel_mean(tmp_path):
    left, right = sine(300, 0.5, 16000, 0.4), sine(300, 0.5, 16000, 0.2)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    clip = read_clip(tmp_path / "stereo.wav", "stereo.wav", 16000)
    assert clip.source_channels == 2
    np.testing.assert_allclose(clip.samples, (left + right) / 2, atol=1e-6)


def test_trimming_cuts_leading_and_trailing_silence_only(tmp_path):
    silence = np.zeros(8000, np.float32)
    tone = sine(300, 1.0, 16000)
    soundfile.write(tmp_path / "padded.wav", np.concatenate([silence, tone, silence]), 16000, subtype="FLOAT")
    untouched = read_clip(tmp_path / "padded.wav", "padded.wav", 16000)
    trimmed = read_clip(tmp_path / "padded.wav", "padded.wav", 16000, trim_top_db=30)
    assert untouched.samples.size == 32000 and untouched.trimmed_samples == 0
    # librosa decides per 2048-sample frame, so up to a frame of silence may stay on each side.
    assert 16000 - 512 <= trimmed.samples.size <= 16000 + 2 * 2048
    assert trimmed.trimmed_samples == 32000 - trimmed.samples.size


def test_unreadable_empty_silent_and_non_finite_clips_fail_naming_the_file(tmp_path):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    soundfile.write(tmp_path / "silent.wav", np.zeros(4000, np.float32), 16000)
    soundfile.write(tmp_path / "nan.wav", np.full(4000, np.nan, np.float32), 16000, subtype="FLOAT")
    soundfile.write(tmp_path / "blip.wav", sine(300, 0.01, 16000), 16000)
    expected = {
        "corrupt.wav": "unreadable audio",
        "missing.wav": "no such file",
        "empty.wav": "empty",
        "silent.wav": "every sample is zero",
        "nan.wav": "NaN",
        "blip.wav": "only 160 samples",
    }
    for name, fragment in expected.items():
        with pytest.raises(BadInputError, match=fragment) as error:
            read_clip(tmp_path / name, f"speaker/{name}", 16000)
        assert f"speaker/{name}" in str(error.value)


def test_clips_are_read_from_bytes_as_from_files(tmp_path):
    soundfile.write(tmp_path / "tone.wav", sine(500, 0.3, 22050), 22050)
    from_file = read_clip(tmp_path / "tone.wav", "tone.wav", 16000)
    from_bytes = read_clip((tmp_path / "tone.wav").read_bytes(), "tone.wav", 16000)
    np.testing.assert_array_equal(from_file.samples, from_bytes.samples)
