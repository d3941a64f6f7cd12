"""Private caches for a test session or a benchmark run, so that nothing reads or writes the user's.

A warm user cache hides bugs (a preprocessing cache hit skips the code under test) and makes
benchmarks time a cache read instead of the work. Every cache the project or its libraries use is
pointed at a fresh temporary folder, removed when the process exits.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

# Environment variable → folder under the private root. The specific hub variables are set too, so a
# user's own HF_HUB_CACHE or TRANSFORMERS_CACHE cannot take precedence over HF_HOME.
CACHE_FOLDERS = {
    "HF_HOME": "huggingface",
    "HF_HUB_CACHE": "huggingface/hub",
    "HUGGINGFACE_HUB_CACHE": "huggingface/hub",
    "TRANSFORMERS_CACHE": "huggingface/hub",
    "HF_MODULES_CACHE": "huggingface/modules",
    "HF_DATASETS_CACHE": "huggingface/datasets",  # hf_tasks' preprocessing cache lives in its hf_tasks/ folder
    "XDG_CACHE_HOME": "xdg",
    "HF_TASKS_CACHE": "hf_tasks",  # the --help cache (hf_tasks.help_cache)
    "TORCH_HOME": "torch",  # torch.hub, and timm's non-hub weights
    "WANDB_DIR": "wandb",
    "WANDB_CACHE_DIR": "wandb/cache",
    "WANDB_CONFIG_DIR": "wandb/config",
    "WANDB_DATA_DIR": "wandb/data",
}


def use_private_caches(prefix: str) -> Path:
    """Point every cache at a new folder under the system's temporary folder; return that folder.

    Libraries read these variables when first imported, so call this before importing them. The
    caches read back at call time (datasets' cache folder, the hub cache) are also set on modules that
    are already imported, which is what a benchmark importing the library at its top needs.
    """
    root = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    for variable, folder in CACHE_FOLDERS.items():
        os.environ[variable] = str(root / folder)
    if "datasets" in sys.modules:
        import datasets.config

        datasets.config.HF_DATASETS_CACHE = Path(os.environ["HF_DATASETS_CACHE"])
    if "huggingface_hub" in sys.modules:
        from huggingface_hub import constants

        constants.HF_HOME = os.environ["HF_HOME"]
        constants.HF_HUB_CACHE = os.environ["HF_HUB_CACHE"]
    return root
