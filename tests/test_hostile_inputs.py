"""Inputs a hostile or careless user gives: names that would become commands, values that would end a job
script's line. Each is refused in one line with status 2, or handled; never a traceback, never a command.

The Slurm cases run the study against stand-in `sbatch`, `sinfo` and `squeue` programs: `sbatch` keeps each job
script it is given, so a test can read the script's `#SBATCH` block and run the script itself."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import yaml

from hf_tasks.config_files import config_values
from hf_tasks.errors import BadInputError, refuse_control_characters
from hf_tasks.study import main
from hf_tasks.study.cli import SlurmOptions, parse_study_args, slurm_resources
from hf_tasks.study.runs import StudyArguments, make_run, secrets_to_environment
from hf_tasks.study.search import read_space, worker_command, worker_environment
from hf_tasks.study.slurm import SlurmStudy, job_name
from hf_tasks.args import parse
from hf_tasks.runner import setup
from tests.conftest import REPO, recipe_args  # first: puts recipes/ on sys.path
from tests.test_study_workers import assert_one_line_refusal

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
    # Flags are not abbreviated: --hub_tok stops the study, and the refusal names the flag, never its value.
    with pytest.raises(BadInputError, match="^--hub_tok: neither a study option") as refused:
        main([str(config), *SLURM, "--output_dir", str(tmp_path / "out"), "--hub_tok", "from-the-command-4567"])
    assert "from-the-" not in str(refused.value) and not (tmp_path / "out").exists()
    assert main([str(config), *SLURM, "--output_dir", str(tmp_path / "out"),
                 "--hub_token", "from-the-command-4567"]) == 0
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


# --- Every refusal in one table: (what is given, the words the one line must hold) ----------------------------


def farstail_parse(tmp_path: Path, *flags: str, config: Path | None = None):
    import farstail

    return parse(*farstail.ARGUMENTS, args=recipe_args(str(config or FARSTAIL_TINY), tmp_path / "run", *flags))


def farstail_run(tmp_path: Path, *flags: str):
    import farstail

    farstail.main(farstail_parse(tmp_path, "--max_train_samples", "8", "--max_eval_samples", "8",
                                 "--max_predict_samples", "8", *flags))


def parsquad_features(tmp_path: Path, *flags: str):
    import parsquad

    state = parse(*parsquad.ARGUMENTS, args=recipe_args("recipes/configs/parsquad/tiny.yaml", tmp_path / "run",
                                                        "--max_train_samples", "8", "--max_eval_samples", "8",
                                                        "--max_predict_samples", "8", *flags))
    monkeypatched_run = parsquad.run
    try:
        parsquad.run = lambda task, *args, **kwargs: task.features(state.training_args)
        parsquad.main(state)
    finally:
        parsquad.run = monkeypatched_run


def config_holding(tmp_path: Path, content: bytes) -> Path:
    config = tmp_path / "bad.yaml"
    config.write_bytes(b"base: " + str(FARSTAIL_TINY).encode() + b"\n" + content)
    return config


def space_holding(tmp_path: Path, content: str) -> Path:
    space = tmp_path / "space.yaml"
    space.write_text(content, encoding="utf-8")
    return space


def study_with(tmp_path: Path, *flags: str, jobs: str | None = None):
    config = config_named(tmp_path / "cfgs", "plain")
    if jobs is not None:
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "jobs.json").write_text(jobs, encoding="utf-8")
    main([str(config), "--output_dir", str(tmp_path / "out"), *flags])


REFUSALS = {
    "batch size 0": (lambda tmp: farstail_parse(tmp, "--per_device_train_batch_size", "0"),
                     "--per_device_train_batch_size 0: give a whole number, 1 or more"),
    "negative learning rate": (lambda tmp: farstail_parse(tmp, "--learning_rate", "-0.1"),
                               "--learning_rate -0.1: a rate below zero"),
    "negative epochs": (lambda tmp: farstail_parse(tmp, "--num_train_epochs", "-1"),
                        "--num_train_epochs -1.0: the run would train no step"),
    "negative progress interval": (lambda tmp: farstail_parse(tmp, "--progress_interval_seconds", "-5"),
                                   "--progress_interval_seconds -5.0: give a number of seconds, or 0"),
    "unknown tracker": (lambda tmp: farstail_parse(tmp, "--report_to", "tensorbored"),
                        "--report_to tensorbored: no such tracker"),
    "list for a number in a config": (
        lambda tmp: farstail_parse(tmp, config=config_holding(tmp, b"learning_rate: [1, 2]\n")),
        "learning_rate: [1, 2] is not a number"),
    "mapping for a switch in a config": (
        lambda tmp: farstail_parse(tmp, config=config_holding(tmp, b"do_train: {a: 1}\n")),
        "do_train: {'a': 1} is not a true or false"),
    "config not UTF-8": (lambda tmp: farstail_parse(tmp, config=config_holding(tmp, b"run_name: caf\xe9\n")),
                         "not UTF-8 text"),
    "doc_stride not below max_seq_length": (lambda tmp: parsquad_features(tmp, "--doc_stride", "128"),
                                            "--doc_stride 128 must be smaller than --max_seq_length 128"),
    "windows too small for the question": (
        lambda tmp: parsquad_features(tmp, "--max_seq_length", "12", "--doc_stride", "6"),
        "raise --max_seq_length or lower --doc_stride"),
    "malformed search space": (lambda tmp: read_space(space_holding(tmp, "objective: [unclosed\n")),
                               "not a readable YAML file"),
    "log range from 0": (
        lambda tmp: read_space(space_holding(tmp, "objective: eval_accuracy\nparameters:\n"
                                                  "  learning_rate: {low: 0, high: 0.1, log: true}\n")),
        "log: true needs low above 0"),
    "malformed jobs.json": (lambda tmp: study_with(tmp, "--status", jobs='{"runs": ["x"]}'),
                            "jobs.json: not the job list this study writes"),
    "hub id unreachable": (lambda tmp: setup(farstail_parse(tmp, "--model_name_or_path", "org/not-cached-anywhere")),
                           "--model_name_or_path org/not-cached-anywhere: HF_HUB_OFFLINE is set and it is not in "
                           "the local cache"),
    "max_seq_length above the model's positions": (lambda tmp: farstail_run(tmp, "--max_seq_length", "100000"),
                                                   "--max_seq_length 100000: bert model reads at most"),
    "baseline naming no config": (lambda tmp: study_with(tmp, "--baseline", "nope"),
                                  "--baseline nope: not one of the study's configs"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_each_hostile_input_is_refused_in_one_line(tmp_path, case):
    make, expected = REFUSALS[case]
    with pytest.raises(BadInputError) as refused:
        make(tmp_path)
    message = " ".join(str(refused.value).split())
    assert expected in message, message
    assert not (tmp_path / "run" / "results.json").exists()


# --- Fuzz: random bytes, wrong-typed scalars and hostile names; one line or a correct result, never a traceback ---

HOSTILE_PIECES = ["\n", "\r", "'", '"', "$(touch PWNED)", "`id`", ";", "#", "\u200f", "\u202e", "\u200c", " ", "ش",
                  "a", "-", "\\", "%j", "\t", "\x00", "=", "{", "*"]
WRONG_SCALARS = [[1, 2], {"a": 1}, "text", -3, 1.5, True, None, "nan", "", 10**30, [], {}]
TYPED_FIELDS = ["learning_rate", "num_train_epochs", "per_device_train_batch_size", "seed", "do_train",
                "max_seq_length", "warmup_steps", "logging_steps", "max_train_samples", "freeze_embeddings"]


def hostile_text(rng: random.Random, pieces: int = 6) -> str:
    return "".join(rng.choice(HOSTILE_PIECES) for _ in range(rng.randint(1, pieces)))


def one_line_or_result(call, *arguments):
    """`call(*arguments)`'s result, or None when it refused in one line (BadInputError, or argparse's status 2)."""
    try:
        return call(*arguments)
    except BadInputError as error:
        assert " ".join(str(error).split()), error
        return None
    except SystemExit as stopped:  # argparse's own refusal of a value: status 2 (its usage text is issue 'one command')
        assert stopped.code == 2
        return None


@pytest.mark.parametrize("seed", range(25))
def test_fuzzed_config_files_are_read_or_refused_in_one_line(tmp_path, seed):
    import farstail

    rng = random.Random(seed)
    raw = tmp_path / "raw.yaml"
    raw.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randint(0, 200))))
    assert one_line_or_result(config_values, raw) is None or isinstance(config_values(raw), dict)
    typed = config_holding(tmp_path, yaml.safe_dump({rng.choice(TYPED_FIELDS): rng.choice(WRONG_SCALARS)
                                                     for _ in range(3)}).encode())
    one_line_or_result(lambda: parse(*farstail.ARGUMENTS, args=recipe_args(str(typed), tmp_path / "run")))


@pytest.mark.parametrize("seed", range(25))
def test_fuzzed_names_make_plain_run_names_and_job_names_or_are_refused(tmp_path, seed):
    rng = random.Random(seed)
    stem = hostile_text(rng).replace("/", "_").replace("\x00", "0")
    try:
        config = config_named(tmp_path / "cfgs", stem)
    except OSError:  # a name the filesystem itself refuses
        return
    run = one_line_or_result(make_run, config, tmp_path / "out")
    if run is not None:
        assert all(unicodedata.category(character) not in ("Cc", "Zl", "Zp") for character in run.name)
        assert job_name(run.name) and all(character.isascii() and (character.isalnum() or character in "._-")
                                          for character in job_name(run.name))


@pytest.mark.parametrize("seed", range(25))
def test_fuzzed_slurm_values_build_a_script_with_no_line_but_its_own(tmp_path, monkeypatch, seed):
    from submitit.slurm.slurm import _make_sbatch_string

    monkeypatch.setenv("PATH", fake_slurm(tmp_path)["PATH"])  # submitit looks for srun
    rng = random.Random(seed)
    values = {name: hostile_text(rng) for name in ("slurm_partition", "slurm_account", "slurm_qos", "mem_per_run")
              if rng.random() < 0.7}
    slurm_option = [f"comment={hostile_text(rng)}"] if rng.random() < 0.5 else []
    resources = one_line_or_result(slurm_resources, SlurmOptions(**values, slurm_option=slurm_option))
    if resources is None:
        return
    study = StudyArguments(configs=[], output_dir=tmp_path / hostile_text(rng).replace("/", "_").replace("\x00", "0"),
                           executor="slurm", slurm=resources)
    if one_line_or_result(refuse_control_characters, str(study.output_dir), "--output_dir") is None:
        return
    executor = SlurmStudy(study).executor(hostile_text(rng), 1, 1, 0)
    script = _make_sbatch_string(command="COMMAND", folder=executor.folder, **executor.parameters)
    own = {"#!/bin/bash", "", "# Parameters", "# command", "export SUBMITIT_EXECUTOR=slurm"}
    strangers = [line for line in script.splitlines() if line not in own and not line.startswith("#SBATCH --")
                 and not line.endswith("COMMAND")]
    assert not strangers, script
