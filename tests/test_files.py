"""Atomic writes and the redaction rule: the two bottom-layer helpers every writer and every log uses."""

from __future__ import annotations

import csv
import os

import pytest

from hf_tasks.files import atomic_path, read_json, write_atomic, write_json, write_with
from hf_tasks.secrets import redact_arguments, redact_mapping, redact_text


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "results.json"
    target.write_text("old", encoding="utf-8")
    write_json(target, {"eval_accuracy": 0.5})
    assert read_json(target) == {"eval_accuracy": 0.5}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["results.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_failure_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "study.csv"
    target.write_text("kept", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half", encoding="utf-8")
            raise RuntimeError("killed mid-write")
    assert target.read_text(encoding="utf-8") == "kept"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["study.csv"]


def test_write_with_and_write_atomic_bytes(tmp_path):
    write_with(tmp_path / "t.csv", lambda handle: csv.writer(handle).writerows([["a", "b"], [1, 2]]))
    assert (tmp_path / "t.csv").read_text(encoding="utf-8").splitlines() == ["a,b", "1,2"]
    write_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"


@pytest.mark.parametrize("content", [None, "", '{"eval_accuracy": 0.', "\xff\xfe"])
def test_read_json_treats_missing_or_cut_short_as_not_there(tmp_path, content):
    path = tmp_path / "trainer_state.json"
    if content is not None:
        path.write_bytes(content.encode("latin-1"))
    assert read_json(path) is None


def test_redaction_hides_tokens_flags_and_url_passwords():
    token = "hf_" + "a1B2" * 8
    argv = ["--hub_token", token, "--hub-token=x", "--storage", "postgresql://ana:s3cret@127.0.0.1:5432/optuna",
            f"--note={token}", "--learning_rate", "1e-5"]
    redacted = redact_arguments(argv)
    joined = " ".join(redacted)
    assert token not in joined and "s3cret" not in joined and "=x" not in joined
    assert "postgresql://ana:***@127.0.0.1:5432/optuna" in redacted
    assert redacted[-2:] == ["--learning_rate", "1e-5"]
    assert redact_text("mysql://root@db/x") == "mysql://root@db/x"
    assert redact_mapping({"hub_token": token, "storage": "postgresql://a:b@h/d", "lr": 1}) == {
        "storage": "postgresql://a:***@h/d", "lr": 1}


@pytest.mark.parametrize("password", ["Sup3r/secret", "p@ss", "a/b@c:d", "s3cret"])
def test_a_url_password_holding_slash_or_at_is_hidden_whole(password):
    url = f"postgresql://me:{password}@db-host:5432/optuna"
    for shown in (redact_text(f"cannot reach {url}; check it"), redact_arguments(["--storage", url])[1]):
        assert "postgresql://me:***@" in shown and password not in shown
        assert not any(piece in shown for piece in password.replace("@", "/").split("/") if len(piece) > 1)


@pytest.mark.parametrize("flag", ["--hub_tok", "--hub_toke", "--hf_tok", "--wandb_api_k", "--push_to_hub_tok"])
def test_an_abbreviated_secret_flag_is_still_secret(flag):
    assert redact_arguments([flag, "s3cret", "--push_to_hub", "true"]) == [flag, "***", "--push_to_hub", "true"]
    assert redact_arguments([f"{flag}=s3cret"]) == [f"{flag}=***"]
