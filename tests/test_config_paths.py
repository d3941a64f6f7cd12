"""Configs that travel: paths beside the config, absolute paths in a run folder's config.yaml,
`--flag none`, and data sources that replace each other."""

import dataclasses
import logging
import re
from pathlib import Path

import pytest
import yaml

import cifar10
import farstail
import segmentation
from hf_tasks import registry
from hf_tasks.args import TrainingArguments, data_source, parse
from hf_tasks.options import DataArguments, ModelArguments
from hf_tasks.config_files import PATH_ARGUMENTS
from hf_tasks.run_state import resolved_config
from hf_tasks.surgery import SurgeryArguments
from tests.conftest import REPO, TRAINING_RECIPES, recipe_args

SAMPLE_TRAIN = REPO / "hf_tasks/samples/farstail/train.tsv"


def write_yaml(path: Path, values: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def experiment(tmp_path, monkeypatch):
    """A config with its data beside it, and a current directory somewhere else."""
    folder = tmp_path / "experiment"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.tsv").write_text(SAMPLE_TRAIN.read_text(encoding="utf-8"), encoding="utf-8")
    config = write_yaml(folder / "config.yaml", {
        "config_name": "bert-base-uncased", "train_file": "data/train.tsv", "output_dir": "runs/x",
        "dataset_cache_dir": "cache",
    })
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return config


def test_a_path_the_run_reads_resolves_beside_the_config(experiment):
    _, data_args, training_args = parse(ModelArguments, DataArguments, TrainingArguments,
                                        args=["--config", str(experiment), "--use_cpu", "true"])
    assert Path(data_args.train_file) == experiment.parent / "data" / "train.tsv"
    # Paths the run writes stay relative to where it is run from, as the repository's configs expect.
    assert training_args.output_dir == "runs/x" and data_args.dataset_cache_dir == "cache"


def test_a_path_on_the_command_line_stays_relative_to_the_current_directory(experiment):
    (Path.cwd() / "mine.tsv").write_text("x")
    _, data_args, _ = parse(ModelArguments, DataArguments, TrainingArguments,
                            args=["--config", str(experiment), "--train_file", "mine.tsv", "--use_cpu", "true"])
    assert data_args.train_file == "mine.tsv"


def test_a_path_missing_beside_the_config_falls_back_to_the_current_directory(tmp_path, monkeypatch):
    config = write_yaml(tmp_path / "configs" / "x.yaml", {"config_name": "hf_tasks/samples/tiny-bert-farstail",
                                                          "train_file": "hf_tasks/samples/farstail/train.tsv"})
    monkeypatch.chdir(REPO)
    model_args, data_args = parse(ModelArguments, DataArguments, args=["--config", str(config)])
    assert data_args.train_file == "hf_tasks/samples/farstail/train.tsv"
    assert model_args.config_name == "hf_tasks/samples/tiny-bert-farstail"


def test_a_data_file_found_nowhere_is_left_for_the_data_layer_to_name(experiment):
    # The repository's configs name data users download later (data/constraint/...): parsing them works.
    config = write_yaml(experiment.parent / "typo.yaml", {"config_name": "x/y", "train_file": "data/trian.tsv"})
    _, data_args = parse(ModelArguments, DataArguments, args=["--config", str(config)])
    assert data_args.train_file == "data/trian.tsv"


def test_a_hub_id_in_a_config_stays_a_hub_id(experiment):
    config = write_yaml(experiment.parent / "hub.yaml", {"model_name_or_path": "org/model", "dataset_name": "org/data"})
    model_args, data_args = parse(ModelArguments, DataArguments, args=["--config", str(config)])
    assert (model_args.model_name_or_path, data_args.dataset_name) == ("org/model", "org/data")


@pytest.mark.parametrize("recipe, config", [
    (farstail, "recipes/configs/farstail/tiny.yaml"), (cifar10, "recipes/configs/cifar10/mlp_baseline.yaml"),
])
def test_the_repository_configs_still_name_files_from_the_repository_root(recipe, config):
    model_args, data_args, *_ = parse(*recipe.ARGUMENTS, args=["--config", config, "--use_cpu", "true"])
    assert Path(model_args.config_name).exists()
    assert data_args.train_file is None or data_args.train_file == "hf_tasks/samples/farstail/train.tsv"


def test_resolved_config_stores_absolute_local_paths_and_keeps_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    resolved = resolved_config(
        ModelArguments(model_name_or_path="org/model"),
        DataArguments(train_file="hf_tasks/samples/farstail/train.tsv"),
        TrainingArguments(output_dir="runs/not-yet-made", use_cpu=True),
    )
    assert resolved["train_file"] == str(SAMPLE_TRAIN)
    assert resolved["output_dir"] == str(REPO / "runs/not-yet-made")
    assert resolved["model_name_or_path"] == "org/model"


def test_a_run_folders_config_reruns_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    arguments = parse(*farstail.ARGUMENTS, args=recipe_args("recipes/configs/farstail/tiny.yaml", tmp_path / "run"))
    saved = write_yaml(tmp_path / "run" / "config.yaml", resolved_config(*arguments))
    monkeypatch.chdir(tmp_path)
    model_args, data_args, *_ = parse(*farstail.ARGUMENTS, args=["--config", str(saved), "--output_dir", "new"])
    assert Path(data_args.test_file) == REPO / "hf_tasks/samples/farstail/test.tsv"
    assert Path(model_args.config_name) == REPO / "hf_tasks/samples/tiny-bert-farstail"


def test_none_on_the_command_line_unsets_a_value_the_config_gave(tmp_path):
    config = write_yaml(tmp_path / "x.yaml", {"model_name_or_path": "org/model", "config_name": "org/config",
                                              "test_file": str(SAMPLE_TRAIN), "freeze": ["embeddings"],
                                              "report_to": "none"})
    model_args, data_args, surgery_args, training_args = parse(
        ModelArguments, DataArguments, SurgeryArguments, TrainingArguments,
        args=["--config", str(config), "--test_file", "none", "--freeze", "None", "--model_name_or_path=null",
              "--use_cpu", "true"],
    )
    assert data_args.test_file is None and surgery_args.freeze is None and model_args.model_name_or_path is None
    assert model_args.config_name == "org/config"
    assert training_args.report_to == []  # "none" keeps its Trainer meaning where it is a value, not "unset"


def test_the_last_mention_of_a_flag_wins_between_a_value_and_none(tmp_path):
    def test_file(*flags):
        _, data_args, _, _ = parse(ModelArguments, DataArguments, SurgeryArguments, TrainingArguments,
                                   args=[*flags, "--model_name_or_path", "org/model", "--use_cpu", "true",
                                         "--output_dir", str(tmp_path)])
        return data_args.test_file

    assert test_file("--test_file", "a.tsv", "--test_file", "none") is None
    assert test_file("--test_file", "none", "--test_file", "b.tsv") == "b.tsv"
    assert test_file("--test_file=a.tsv", "--test_file=null", "--freeze", "embeddings") is None


def test_a_data_folder_on_the_command_line_replaces_the_configs_hub_dataset(tmp_path):
    _, data_args, *_ = parse(*cifar10.ARGUMENTS, args=["--config", "recipes/configs/cifar10/densenet201.yaml",
                                                       "--data_dir", str(tmp_path), "--use_cpu", "true"])
    assert data_args.dataset_name is None and data_args.data_dir == str(tmp_path)
    assert data_source(data_args) == f"folder {tmp_path}"


def test_a_hub_dataset_on_the_command_line_replaces_the_configs_files():
    _, data_args, *_ = parse(*farstail.ARGUMENTS, args=["--config", "recipes/configs/farstail/tiny.yaml",
                                                        "--dataset_name", "org/nli", "--use_cpu", "true"])
    assert (data_args.train_file, data_args.validation_file, data_args.test_file) == (None, None, None)
    assert data_source(data_args) == "hub dataset org/nli"


def test_one_file_on_the_command_line_keeps_the_configs_other_files():
    _, data_args, *_ = parse(*farstail.ARGUMENTS, args=["--config", "recipes/configs/farstail/tiny.yaml",
                                                        "--test_file", str(SAMPLE_TRAIN), "--use_cpu", "true"])
    assert data_args.train_file == "hf_tasks/samples/farstail/train.tsv" and data_args.test_file == str(SAMPLE_TRAIN)
    assert data_source(data_args) == ("local files: train hf_tasks/samples/farstail/train.tsv, validation "
                                      f"hf_tasks/samples/farstail/validation.tsv, test {SAMPLE_TRAIN}")


def test_images_on_the_command_line_replace_a_segmentation_configs_dataset(tmp_path):
    _, args = parse(*segmentation.ARGUMENTS, args=["--config", "recipes/configs/segmentation/beit_ade_scene_parse.yaml",
                                                   "--images", str(tmp_path)])
    assert args.dataset_name is None and args.images == [str(tmp_path)]


def test_the_run_log_names_the_data_source(tmp_path, caplog):
    arguments = parse(*farstail.ARGUMENTS, args=recipe_args(
        "recipes/configs/farstail/tiny.yaml", tmp_path / "run", "--do_train", "false", "--do_predict", "false",
        "--max_eval_samples", "8", "--validation_file", "hf_tasks/samples/farstail/test.tsv"))
    with caplog.at_level(logging.INFO, logger="hf_tasks"):
        farstail.main(arguments)
    data_args = arguments[DataArguments]
    assert Path(data_args.train_file).resolve() == REPO / "hf_tasks/samples/farstail/train.tsv"
    assert (f"Data: local files: train {data_args.train_file}, validation hf_tasks/samples/farstail/test.tsv, "
            f"test {data_args.test_file}") in caplog.messages


def test_a_cpu_run_saves_its_arguments_as_given(tmp_path):
    """The run log quiets torch's CPU pin-memory warning without changing the arguments, so the saved
    config.yaml reruns on a GPU with memory pinning as the Trainer defaults it."""
    flags = recipe_args("recipes/configs/farstail/tiny.yaml", tmp_path / "run", "--do_train", "false",
                        "--do_predict", "false", "--max_eval_samples", "8")
    at = flags.index("--use_cpu")
    del flags[at:at + 2]  # --use_cpu makes the Trainer itself turn pinning off; this machine has no GPU anyway
    farstail.main(parse(*farstail.ARGUMENTS, args=flags))
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text(encoding="utf-8"))
    assert saved["dataloader_pin_memory"] is True and saved["disable_tqdm"] is True  # as recipe_args gave it


@pytest.mark.parametrize("recipe", registry.recipe_names())
def test_every_path_argument_of_a_recipe_says_how_a_config_resolves_it(recipe):
    path_like = {field.name for argument_type in registry.load(recipe).arguments
                 for field in dataclasses.fields(argument_type)
                 if re.search(r"(_file|_dir|_path|folder)$|^images$", field.name)}
    assert path_like - {"overwrite_output_dir"} <= set(PATH_ARGUMENTS)


@pytest.mark.parametrize("recipe", TRAINING_RECIPES)
def test_the_shipped_demo_configs_find_their_sample_files_from_any_directory(recipe, tmp_path, monkeypatch):
    config = registry.configs_folder(recipe) / "tiny.yaml"
    monkeypatch.chdir(tmp_path)
    arguments = registry.load(recipe).parse(["--config", str(config), "--output_dir", str(tmp_path / "run")])
    model_args = next(argument for argument in arguments if hasattr(argument, "config_name"))
    data_args = next(argument for argument in arguments if hasattr(argument, "train_file"))
    assert model_args.config_name is None or Path(model_args.config_name).is_dir()
    assert all(Path(path).is_file() for path in (data_args.train_file, data_args.validation_file,
                                                  data_args.test_file) if path)


def test_the_recipes_that_train_are_the_ones_with_a_tiny_config():
    # The CPU tests find the recipes to train by their tiny config.
    assert TRAINING_RECIPES == [name for name in registry.recipe_names() if registry.load(name).trains]
