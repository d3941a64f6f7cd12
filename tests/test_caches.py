"""The test session reads and writes only its own caches, never the user's."""

from __future__ import annotations

import os
from pathlib import Path

import datasets.config
import torch
from huggingface_hub import constants
from transformers import AutoTokenizer, TrainingArguments

from hf_tasks.options import DataArguments
from hf_tasks.data.bad_rows import BadRows
from hf_tasks.data import squad
from hf_tasks.samples.pquad import make_split
from hf_tasks.tasks.qa import QAArguments, QuestionAnsweringTask
from tests.conftest import SESSION_CACHES
from tests.test_qa_task import TOKENIZER, squad_file


def test_every_cache_folder_is_inside_the_session_folder():
    folders = {
        "datasets": datasets.config.HF_DATASETS_CACHE,
        "hub": constants.HF_HUB_CACHE,
        "hub home (token, modules)": constants.HF_HOME,
        "torch hub and timm": torch.hub.get_dir(),
        **{variable: os.environ[variable] for variable in ("XDG_CACHE_HOME", "WANDB_DIR", "WANDB_CACHE_DIR")},
    }
    outside = {name: folder for name, folder in folders.items() if not Path(folder).is_relative_to(SESSION_CACHES)}
    assert not outside
    assert not SESSION_CACHES.is_relative_to(Path.home())


def test_preprocessing_writes_its_cache_into_the_session_folder(tmp_path):
    data_args = DataArguments(train_file=str(squad_file(tmp_path, make_split(2, seed=11, prefix="iso"), "train.json")))
    task = QuestionAnsweringTask(squad.load(data_args, bad_rows=BadRows(False)),
                                 AutoTokenizer.from_pretrained(TOKENIZER), data_args, QAArguments())
    features = task.features(TrainingArguments(output_dir=str(tmp_path / "out"), use_cpu=True, report_to="none"))
    cache_file = Path(features["train"].cache_files[0]["filename"])
    assert cache_file.parent == SESSION_CACHES / "huggingface/datasets/hf_tasks"
