"""Configs written as differences (`base: other.yaml`): merging, paths, errors, and every config of the
repository resolving through its recipe's parser (no training)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from hf_tasks import registry
from hf_tasks.args import parse, usable_cpus
from hf_tasks.options import DataArguments, ModelArguments
from hf_tasks.run_state import resolved_config
from hf_tasks.config_files import SHARED_BASE_NAME, config_layers, config_values
from hf_tasks.errors import BadInputError
from hf_tasks.parsing import parse_options
from hf_tasks.study import main as study_main
from hf_tasks.study import resolve_recipe
from tests.conftest import REPO

CONFIGS = REPO / "recipes" / "configs"
EXPERIMENT_CONFIGS = sorted(path for path in CONFIGS.glob("*/*.yaml") if path.name != SHARED_BASE_NAME)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("config", EXPERIMENT_CONFIGS, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_config_resolves_through_its_recipe(config, tmp_path):
    recipe = registry.load(config.parent.name)
    # As written, on any machine: no --use_cpu or --bf16 needed without a GPU (tests/test_hardware.py).
    output = [] if not recipe.trains else ["--output_dir", str(tmp_path)]
    state = recipe.parse(["--config", str(config), *output])
    resolved = resolved_config(*state)
    assert "base" not in resolved
    for name, value in config_values(config).items():
        # Loader workers are capped at the CPUs this process may use; the saved config keeps what was given.
        if name == "dataloader_num_workers":
            assert state.training_args.dataloader_num_workers == min(value, usable_cpus()), config.name
        if name != "output_dir" and not isinstance(value, str):
            assert resolved[name] == value, (config.name, name)


@pytest.mark.parametrize("config", EXPERIMENT_CONFIGS, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_every_named_base_exists_and_every_base_is_used(config):
    for file, _ in config_layers(config):
        assert file.is_file()
    for base in CONFIGS.glob(f"*/{SHARED_BASE_NAME}"):
        users = [path for path in base.parent.glob("*.yaml") if path != base
                 and base in [file for file, _ in config_layers(path)]]
        assert users, f"{base} is the base of no config"


def test_keys_override_the_base_and_bases_chain(tmp_path):
    write(tmp_path / "a.yaml", "learning_rate: 0.1\nseed: 1\nmax_seq_length: 64\n")
    write(tmp_path / "b.yaml", "base: a.yaml\nseed: 2\n")
    config = write(tmp_path / "runs" / "c.yaml", "base: ../b.yaml\nmax_seq_length: 32\n")
    assert config_values(config) == {"learning_rate": 0.1, "seed": 2, "max_seq_length": 32}
    assert [file.name for file, _ in config_layers(config)] == ["a.yaml", "b.yaml", "c.yaml"]


def test_a_base_s_paths_resolve_beside_the_base(tmp_path):
    write(tmp_path / "shared" / "data" / "train.csv", "text,label\n")
    write(tmp_path / "mine" / "data" / "validation.csv", "text,label\n")
    write(tmp_path / "shared" / "base.yaml", "config_name: hf_tasks/samples/tiny-bert-en\ntrain_file: data/train.csv\n")
    config = write(tmp_path / "mine" / "run.yaml", "base: ../shared/base.yaml\nvalidation_file: data/validation.csv\n")
    _, data_args = parse(ModelArguments, DataArguments, args=["--config", str(config)])
    assert Path(data_args.train_file).resolve() == (tmp_path / "shared" / "data" / "train.csv").resolve()
    assert Path(data_args.validation_file).resolve() == (tmp_path / "mine" / "data" / "validation.csv").resolve()


def test_the_command_line_still_wins_over_a_base(tmp_path):
    write(tmp_path / "base.yaml", "config_name: hf_tasks/samples/tiny-bert-en\nmax_seq_length: 64\n")
    config = write(tmp_path / "run.yaml", "base: base.yaml\n")
    _, data_args = parse(ModelArguments, DataArguments, args=["--config", str(config), "--max_seq_length", "16"])
    assert data_args.max_seq_length == 16


def test_a_missing_base_names_both_files(tmp_path):
    config = write(tmp_path / "run.yaml", "base: nowhere.yaml\nseed: 1\n")
    with pytest.raises(BadInputError, match=r"run\.yaml: base: nowhere\.yaml is no file .*nowhere\.yaml"):
        config_values(config)


def test_a_cycle_of_bases_names_the_files(tmp_path):
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(BadInputError, match=r"cycle \(.*a\.yaml -> .*b\.yaml -> .*a\.yaml\)") as raised:
        config_values(tmp_path / "a.yaml")
    assert "\n" not in str(raised.value)
    write(tmp_path / "self.yaml", "base: self.yaml\n")
    with pytest.raises(BadInputError, match="cycle"):
        config_values(tmp_path / "self.yaml")


def test_an_unknown_key_in_a_base_names_the_base(tmp_path):
    write(tmp_path / "base.yaml", "config_name: hf_tasks/samples/tiny-bert-en\nlearning_rat: 0.1\n")
    config = write(tmp_path / "run.yaml", "base: base.yaml\n")
    with pytest.raises(BadInputError, match=r"base\.yaml: unknown argument\(s\) \['learning_rat'\]"):
        parse(ModelArguments, DataArguments, args=["--config", str(config)])


@dataclass
class Switches:
    cache: bool = field(default=True, metadata={"help": "A switch on by default: the parser adds --no_cache."})


def test_a_config_names_a_switch_by_its_name_not_by_its_no_complement(tmp_path):
    # As a config key, no_cache would be stored as cache with its value unnegated, so it is refused.
    assert parse_options(Switches, args=["--no_cache"])[0][0].cache is False
    config = write(tmp_path / "run.yaml", "no_cache: true\n")
    with pytest.raises(BadInputError, match=r"unknown argument\(s\) \['no_cache'\]"):
        parse_options(Switches, args=["--config", str(config)])
    assert parse_options(Switches, args=["--config", str(write(tmp_path / "off.yaml", "cache: false\n"))])[0][0].cache \
        is False


def test_the_study_reads_a_config_with_its_base(tmp_path):
    freeze9 = CONFIGS / "farstail" / "freeze9.yaml"
    assert resolve_recipe(freeze9)[1] == config_values(freeze9)
    folder = tmp_path / "recipes" / "configs" / "nli"
    # A stand-in recipe that writes the config it was launched with as its results.
    write(tmp_path / "recipes" / "nli.py", "import json, sys, yaml\nfrom pathlib import Path\n"
          "args = dict(zip(sys.argv[1::2], sys.argv[2::2]))\n"
          "out = Path(args['--output_dir']); out.mkdir(parents=True, exist_ok=True)\n"
          "values = yaml.safe_load(Path(args['--config']).read_text())\n"
          "(out / 'results.json').write_text(json.dumps({'seen': values, 'eval_accuracy': 0.5}))\n")
    write(folder / SHARED_BASE_NAME, "learning_rate: 0.1\nseed: 1\n")
    config = write(folder / "small.yaml", "base: base.yaml\nlearning_rate: 0.01\n")
    output_dir = tmp_path / "study"
    # The shell's glob names base.yaml too: the study passes over it.
    assert study_main([str(folder / SHARED_BASE_NAME), str(config), "--output_dir", str(output_dir),
                       "--seeds", "7"]) == 0
    assert sorted(path.name for path in output_dir.iterdir() if path.is_dir() and path.name.startswith("nli")) == \
        ["nli-small-seed7"]
    seen = json.loads((output_dir / "nli-small-seed7" / "results.json").read_text())["seen"]
    assert seen == {"learning_rate": 0.01, "seed": 7}
    assert "base" not in yaml.safe_load((output_dir / "configs" / "nli-small-seed7.yaml").read_text())
