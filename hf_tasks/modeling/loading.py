"""Load a model that surgery (`hf_tasks.surgery`) changed, from a local folder or the Hub.

Deleted layers need nothing special (the config says how many remain), but a model with pruned heads
has per-layer projection sizes that a config cannot describe to the model class. `from_pretrained`
builds the class as usual, removes the heads recorded in `config.pruned_heads` right after
construction, and lets `transformers` load the weights into that structure (sharding, dtype, device
placement and checkpoint key conversions all still apply).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from urllib.parse import urlparse
from typing import Any

from transformers import AutoConfig, PreTrainedModel
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _get_model_class

from hf_tasks.errors import BadInputError
from hf_tasks.modeling.pruned_heads import remove_recorded_heads

#: The arguments that name a model, config or tokenizer to load: a local folder or a hub id.
MODEL_SOURCES = ("model_name_or_path", "config_name", "tokenizer_name")
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")

# `from_pretrained` keyword arguments that locate the files, shared with the config lookup.
_LOCATION_KEYS = ("cache_dir", "revision", "token", "trust_remote_code", "local_files_only", "force_download",
                  "subfolder")


def check_hub_ids(arguments: Any) -> None:
    """Before any data is read: each hub id among `arguments`' model sources must be cached or the Hub reachable
    (one connection, no retries), else one line naming it and the ways out, instead of a minute of retries and a
    traceback when the model is built. What the Hub says of the repository (private, gated, missing) is left to
    the loader."""
    from huggingface_hub import constants, try_to_load_from_cache

    for flag in MODEL_SOURCES:
        value = getattr(arguments, flag, None)
        if not isinstance(value, str) or not value or Path(value).exists():
            continue
        repo_id = value.removeprefix("hf-hub:")  # timm's prefix for hub models
        if "/" not in repo_id:  # a timm architecture name or a legacy id: its loader knows where it lives
            continue
        cached = try_to_load_from_cache(repo_id, "config.json", cache_dir=getattr(arguments, "cache_dir", None))
        if isinstance(cached, str):
            continue
        if constants.HF_HUB_OFFLINE or os.environ.get("TRANSFORMERS_OFFLINE", "") not in ("", "0"):
            how = "HF_HUB_OFFLINE is set and it is not in the local cache"
        elif any(os.environ.get(name) for name in PROXY_VARIABLES):
            continue  # the Hub is reached through a proxy: a direct connection proves nothing
        else:
            endpoint = urlparse(constants.ENDPOINT)
            try:
                socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=10).close()
                continue
            except OSError as error:
                how = f"{endpoint.hostname} cannot be reached ({error.strerror or error}) and it is not cached"
        raise BadInputError(f"--{flag} {value}: {how}; download it where there is a network (hf download "
                            f"{repo_id}) and run with HF_HUB_OFFLINE=1, or give a local folder holding the model.")


def _with_pruned_heads(model_class: type[PreTrainedModel]) -> type[PreTrainedModel]:
    """A subclass whose constructor removes the recorded heads (used only while loading)."""

    def __init__(self, config, *args, **kwargs):
        model_class.__init__(self, config, *args, **kwargs)
        remove_recorded_heads(self)

    return type(model_class.__name__, (model_class,), {"__init__": __init__, "__module__": model_class.__module__})


def from_pretrained(model_class: type, name_or_path: str, **kwargs: Any) -> PreTrainedModel:
    """`model_class.from_pretrained(name_or_path, **kwargs)` that also reloads head-pruned models.

    `model_class` is a concrete class (`BertForSequenceClassification`) or an Auto class
    (`AutoModelForSequenceClassification`). The saved model gives the same outputs as before saving.
    """
    config = kwargs.get("config")
    if config is None or isinstance(config, str):
        location = {key: kwargs[key] for key in _LOCATION_KEYS if key in kwargs}
        config = AutoConfig.from_pretrained(config or name_or_path, **location)
    if not getattr(config, "pruned_heads", None):
        return model_class.from_pretrained(name_or_path, **kwargs)
    concrete = (
        _get_model_class(config, model_class._model_mapping) if issubclass(model_class, _BaseAutoModelClass)
        else model_class
    )
    if getattr(concrete, "rebuilds_pruned_heads", False):  # hf_tasks' own heads remove them when built
        return model_class.from_pretrained(name_or_path, **kwargs)
    model = _with_pruned_heads(concrete).from_pretrained(name_or_path, **kwargs)
    model.__class__ = concrete  # the loading subclass adds nothing the model needs afterwards
    return model
