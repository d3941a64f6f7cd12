"""Loading a pretrained model, or building one from a config, through the `transformers` Auto classes."""

from __future__ import annotations

from transformers import AutoConfig, AutoTokenizer


def load_config(model_args, **overrides):
    """The model's config (or `--config_name`'s) with task overrides such as `num_labels` or `id2label`."""
    return AutoConfig.from_pretrained(
        model_args.config_name or model_args.model_name_or_path, **overrides, **model_args.pretrained_kwargs()
    )


def load_model(auto_class, model_args, **config_overrides):
    """Pretrained weights from `--model_name_or_path` (hub id or folder), else random weights from the config."""
    config = load_config(model_args, **config_overrides)
    if model_args.model_name_or_path is None:
        return auto_class.from_config(config, trust_remote_code=model_args.trust_remote_code)
    return auto_class.from_pretrained(model_args.model_name_or_path, config=config, **model_args.pretrained_kwargs())


def load_processor(model_args, auto_class=AutoTokenizer, **kwargs):
    """Tokenizer, feature extractor or image processor from `--tokenizer_name`, the model or the config."""
    source = model_args.tokenizer_name or model_args.model_name_or_path or model_args.config_name
    return auto_class.from_pretrained(source, **model_args.pretrained_kwargs(), **kwargs)
