"""Inputs a hostile or careless user gives: names that would become commands, values that would end a job
script's line. Each is refused in one line with status 2, or handled; never a traceback, never a command.

The Slurm cases run the study against stand-in `sbatch`, `sinfo` and `squeue` programs: `sbatch` keeps each job
script it is given, so a test can read the script's `#SBATCH` block and run the script itself."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hf_tasks.errors import BadInputError
from hf_tasks.study import main
from hf_tasks.study.cli import parse_study_args
from hf_tasks.study.runs import secrets_to_environment
from hf_tasks.study.search import worker_command, worker_environment
from tests.conftest import REPO

STUDY = [sys.executable, "-m", "hf_tasks.study"]
FARSTAIL_TINY = REPO / "recipes" / "configs" / "farstail" / "tiny.yaml"
STAND_INS = {
    "sbatch": '#!/bin/sh\ncp "$1" "$SAVED_SCRIPTS/job-$$.sh"\nprintf %s "$HF_TOKEN" > "$SAVED_SCRIPTS/token-$$"\n'
              'echo "Submitted batch job $$"\n',
    "sinfo": "#!/bin/sh\necho debug\n",
    "squeue": "#!/bin/sh\nexit 0\n",
    "srun": "#!/bin/sh\nexit 0\n",  # the saved script's command: does nothing here
}
INJECTED = "touch PWNED #"


def fake_slurm(folder: Path) -> dict[str, str]:
    """Stand-in Slurm programs in `folder`/bin; the environment that puts them first on PATH."""
    bin_folder, saved = folder / "bin", folder / "scripts"
    bin_folder.mkdir()
    saved.mkdir()
    for name, text in STAND_INS.items():
        (bin_folder / name).write_text(text)
        (bin_folder / name).chmod(0o755)
    return {"PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}", "SAVED_SCRIPTS": str(saved)}


def run_study(folder: Path, *arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*STUDY, *arguments], cwd=folder, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env, "PYTHONPATH": str(REPO)})


def assert_one_line_refusal(finished: subprocess.CompletedProcess, *expected: str) -> str:
    assert finished.returncode == 2, (finished.stdout, finished.stderr)
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), finished.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def config_named(folder: Path, stem: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{stem}.yaml"
    config.write_text(yaml.safe_dump({"recipe": str(REPO / "recipes" / "farstail.py"), "base": str(FARSTAIL_TINY)}))
    return config


def sbatch_block(script: str) -> list[str]:
    """The lines sbatch reads options from: after the shebang, up to the first line that is not a comment."""
    block = []
    for line in script.splitlines()[1:]:
        if line.strip() and not line.startswith("#"):
            break
        if line.startswith("#SBATCH"):
            block.append(line)
    return block


SLURM = ["--executor", "slurm", "--slurm_partition", "debug", "--slurm_time", "30", "--detach"]


def refusal(arguments: list[str]) -> str:
    """The one line the study refuses `arguments` with (asserted to be one line)."""
    with pytest.raises(BadInputError) as refused:
        main(arguments)
    message = str(refused.value)
    assert "\n" not in message and "\r" not in message, message
    return message


@pytest.mark.parametrize("stem", ["x\ntouch PWNED #", "x\rtouch PWNED #", "x\u202etouch PWNED #"])
def test_a_config_name_with_a_control_character_is_refused_naming_the_file(tmp_path, monkeypatch, stem):
    env = fake_slurm(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = config_named(tmp_path / "cfgs", stem)
    message = refusal([str(config), *SLURM, "--output_dir", str(tmp_path / "out")])
    assert "control character" in message and repr(str(config)) in message
    assert not list(Path(env["SAVED_SCRIPTS"]).iterdir())  # nothing submitted


def test_a_command_line_token_wins_over_the_configs_under_slurm_as_locally_and_no_file_holds_either(
        tmp_path, monkeypatch):
    env = fake_slurm(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    config = config_named(tmp_path / "cfgs", "tokened")
    config.write_text(config.read_text() + "hub_token: from-the-config-0123\n")
    assert main([str(config), *SLURM, "--output_dir", str(tmp_path / "out"), "--hub_tok", "from-the-command-4567"]) == 0
    [token] = Path(env["SAVED_SCRIPTS"]).glob("token-*")
    assert token.read_text() == "from-the-command-4567"
    _, _, local = secrets_to_environment({"hub_token": "from-the-config-0123"},
                                         ["--hub_token", "from-the-command-4567"])
    assert local == {"HF_TOKEN": "from-the-command-4567"}
    for path in [*(tmp_path / "out").rglob("*"), *Path(env["SAVED_SCRIPTS"]).glob("job-*")]:
        if path.is_file():
            assert b"from-the-" not in path.read_bytes(), path


def test_local_search_workers_get_the_token_through_the_environment_only(tmp_path):
    config = config_named(tmp_path / "cfgs", "searched")
    space = tmp_path / "space.yaml"
    space.write_text("objective: eval_accuracy\nparameters:\n  learning_rate: {low: 1.0e-5, high: 1.0e-3}\n")
    argv = [str(config), "--output_dir", str(tmp_path / "out"), "--search", str(space), "--hub_toke", "s3cret-89",
            "--hub_token=s3cret-89"]
    study = parse_study_args(argv)
    command = worker_command(study, argv, 0)
    assert not any("s3cret" in item or item.startswith("--hub_tok") for item in command), command
    assert worker_environment(study)["HF_TOKEN"] == "s3cret-89"


def test_any_printable_name_makes_a_whole_sbatch_block_and_no_command(tmp_path):
    env = fake_slurm(tmp_path)
    hostile = "a\"b' $(touch PWNED) `touch PWNED`; touch PWNED #"
    config = config_named(tmp_path / "cfgs", hostile)
    finished = run_study(tmp_path, str(config), *SLURM, "--output_dir", f"out {hostile}", "--mem_per_run",
                         "1G", "--slurm_option", "comment=a b'c", env=env)
    assert finished.returncode == 0, finished.stderr
    [script_path] = Path(env["SAVED_SCRIPTS"]).glob("job-*.sh")
    block = sbatch_block(script_path.read_text())
    options = {line.split("=", 1)[0].removeprefix("#SBATCH ") for line in block}
    assert {"--partition", "--time", "--requeue", "--signal", "--job-name", "--output", "--mem"} <= options, block
    [name_line] = [line for line in block if line.startswith("#SBATCH --job-name=")]
    assert all(character.isalnum() or character in "._-" for character in name_line.split("=", 1)[1]), name_line
    subprocess.run(["bash", str(script_path)], cwd=tmp_path, env={**os.environ, **env}, capture_output=True,
                   timeout=60)
    assert not (tmp_path / "PWNED").exists()


def test_a_newline_in_a_config_name_is_one_line_and_status_2_from_the_command(tmp_path):
    env = fake_slurm(tmp_path)
    config = config_named(tmp_path / "cfgs", "x\ntouch PWNED #")
    assert_one_line_refusal(run_study(tmp_path, str(config), *SLURM, "--output_dir", "out", env=env),
                            "control character")
    assert not (tmp_path / "PWNED").exists() and not list(Path(env["SAVED_SCRIPTS"]).iterdir())


@pytest.mark.parametrize("flag", ["--mem_per_run", "--slurm_account", "--slurm_qos", "--slurm_time",
                                  "--slurm_partition", "--output_dir", "--slurm_option"])
def test_a_slurm_value_with_a_line_break_is_refused_naming_its_flag(tmp_path, flag):
    config = config_named(tmp_path / "cfgs", "plain")
    values = {"--output_dir": str(tmp_path / "out"), "--slurm_partition": "debug", "--slurm_time": "30"}
    values[flag] = f"comment=4G\n{INJECTED}"
    arguments = [item for pair in values.items() for item in pair]
    message = refusal([str(config), "--executor", "slurm", "--detach", *arguments])
    assert message.startswith(flag) and "control character" in message
