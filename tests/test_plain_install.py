"""A plain (non-editable) install runs the recipes: the wheel holds them, their configs and the sample data, and
`hf-tasks list` and a tiny `hf-tasks run` work from its contents alone, in a folder outside the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

import pytest

from hf_tasks import registry
from tests.conftest import REPO

# What the wheel is built from (a copy, so the build leaves nothing in the checkout).
SOURCES = ("pyproject.toml", "setup.py", "README.md", "hf_tasks", "recipes")


@pytest.mark.slow
def test_the_wheel_alone_lists_the_recipes_and_runs_a_tiny_config(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(REPO / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "wheel"), str(source)], check=True, timeout=300)
    wheel = next((tmp_path / "wheel").glob("hf_tasks-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for recipe in registry.recipe_names():
        assert f"hf_tasks_recipes/{recipe}.py" in names
        assert all(f"hf_tasks_recipes/configs/{recipe}/{config}.yaml" in names for config in registry.configs(recipe))
    assert "hf_tasks/samples/farstail/train.tsv" in names and "hf_tasks_recipes/accelerate/cpu_ddp.yaml" in names
    assert "hf-tasks = hf_tasks.command:main" in zipfile.ZipFile(wheel).read(
        next(name for name in names if name.endswith("entry_points.txt"))).decode()

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    listed = subprocess.run([sys.executable, "-m", "hf_tasks.command", "list"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=60)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == registry.recipe_names(), listed.stderr
    ran = subprocess.run([sys.executable, "-m", "hf_tasks.command", "run", "farstail", "--config", "tiny",
                          "--output_dir", "x", "--max_steps", "2", "--max_eval_samples", "8", "--do_predict", "false",
                          "--eval_strategy", "no", "--use_cpu", "true", "--report_to", "none"],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "eval_accuracy" in json.loads((elsewhere / "x" / "results.json").read_text())
    assert str(site / "hf_tasks" / "samples" / "farstail") in (elsewhere / "x" / "config.yaml").read_text()
