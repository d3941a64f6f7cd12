"""The text classifier a recipe trains: the checkpoint's own sequence-classification head (`--head auto`)
or the BiGRU head on its token states (`--head bigru`). `build_model` keeps the builder contract every
model family shares (`hf_tasks.modeling`)."""

from __future__ import annotations

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedModel

from hf_tasks.modeling.auto import load_config, load_model
from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification
from hf_tasks.modeling.labels import ClassLabels
from hf_tasks.options import ModelArguments, TextHeadArguments


def build_model(model_args: ModelArguments, head_args: TextHeadArguments, labels: ClassLabels,
                processor) -> PreTrainedModel:
    """A sequence classifier for `labels` with the head `head_args.head` names; `processor` is the tokenizer.

    Pretrained weights from `--model_name_or_path`, else random weights from `--config_name`. A saved BiGRU
    classifier loads back whichever head is asked for; a BiGRU model gets its tokenizer padding on the right,
    because it packs each sequence by its length from the left.
    """
    config = labels.config()
    # Weights train in float32 whatever the checkpoint stores; --bf16/--fp16 add mixed precision.
    config["dtype"] = torch.float32
    if head_args.head_dropout is not None:
        config["classifier_dropout"] = head_args.head_dropout
    if head_args.head == "bigru" and not _is_bigru_classifier(model_args):
        model = _bigru_on_encoder(model_args, head_args, config)
    else:
        model = load_model(AutoModelForSequenceClassification, model_args, **config)
    if isinstance(model, BiGRUForSequenceClassification):
        processor.padding_side = "right"
    return model


def _is_bigru_classifier(model_args: ModelArguments) -> bool:
    """Whether the model (else the config) given is a saved BiGRU classifier rather than an encoder; the model's
    own config wins, as in `load_config`, so a run folder reloads whatever --config_name a config names."""
    return load_config(model_args).model_type == BiGRUConfig.model_type


def _bigru_on_encoder(model_args: ModelArguments, head_args: TextHeadArguments, config: dict) -> PreTrainedModel:
    """A new BiGRU head on the encoder of `--model_name_or_path` (random weights from `--config_name` without it)."""
    head = {"gru_hidden_size": head_args.head_hidden_size, "gru_num_layers": head_args.gru_num_layers,
            "gru_dropout": head_args.gru_dropout, **config}
    if model_args.model_name_or_path is None:
        return BiGRUForSequenceClassification(BiGRUConfig(encoder=load_config(model_args), **head))
    encoder_kwargs = {**model_args.pretrained_kwargs(), "dtype": head.pop("dtype")}
    return BiGRUForSequenceClassification.from_pretrained_encoder(
        model_args.model_name_or_path, encoder_kwargs=encoder_kwargs, **head
    )
