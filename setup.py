"""The packages an install ships, which pyproject.toml cannot say: hf_tasks, found, and the top-level recipes/
folder as the package hf_tasks_recipes. recipes/ stays where a reader opens it; installed beside hf_tasks, its
configs' relative paths to hf_tasks/samples hold in a checkout and in site-packages alike."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["hf_tasks", "hf_tasks.*"]), "hf_tasks_recipes"],
      package_dir={"hf_tasks_recipes": "recipes"})
