"""Loading a pretrained model, or building one from a config, through the `transformers` Auto classes."""

from __future__ import annotations

from transformers import AutoConfig, AutoTokenizer

from hf_tasks.modeling.loading import from_pretrained
from hf_tasks.options import ModelArguments


def load_config(model_args: ModelArguments, **overrides):
    """The pretrained model's config (else `--config_name`'s) with task overrides such as `id2label`.

    The model's own config wins over `--config_name`, so a tiny config that builds from scratch can
    also evaluate a trained run folder given as `--model_name_or_path`.
    """
    return AutoConfig.from_pretrained(model_args.source, **overrides, **model_args.pretrained_kwargs())


def load_model(auto_class, model_args: ModelArguments, **config_overrides):
    """Pretrained weights from `--model_name_or_path` (hub id or folder), else random weights from the config."""
    config = load_config(model_args, **config_overrides)
    if model_args.model_name_or_path is None:
        return auto_class.from_config(config, trust_remote_code=model_args.trust_remote_code)
    # Through surgery's loader, so run folders with pruned heads reload too.
    return from_pretrained(auto_class, model_args.model_name_or_path, config=config, **model_args.pretrained_kwargs())


def load_processor(model_args: ModelArguments, auto_class=AutoTokenizer, **kwargs):
    """Tokenizer, feature extractor or image processor from `--tokenizer_name`, the model or the config."""
    source = model_args.tokenizer_name or model_args.source
    return auto_class.from_pretrained(source, **model_args.pretrained_kwargs(), **kwargs)
