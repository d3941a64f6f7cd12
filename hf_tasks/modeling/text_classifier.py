"""The text classifier a recipe trains, built from the class names: the checkpoint's own
sequence-classification head (`--head auto`) or the BiGRU head on its token states (`--head bigru`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel

from hf_tasks.modeling.auto import load_config, load_model
from hf_tasks.modeling.bigru import BiGRUConfig, BiGRUForSequenceClassification
from hf_tasks.modeling.head_choice import SEQUENCE_CLASSIFIER_HEADS
from hf_tasks.modeling.labels import label_maps


@dataclass
class HeadArguments:
    head: str = SEQUENCE_CLASSIFIER_HEADS.dataclass_field()
    gru_hidden_size: int = field(default=256, metadata={"help": "GRU hidden size per direction."})
    gru_num_layers: int = field(default=1, metadata={"help": "Stacked GRU layers."})
    gru_dropout: float = field(default=0.0, metadata={"help": "Dropout between stacked GRU layers."})
    classifier_dropout: float | None = field(
        default=None, metadata={"help": "Dropout before the classifier (unset: the backbone's, or 0.1 for bigru)."}
    )

    def __post_init__(self):
        self.head = SEQUENCE_CLASSIFIER_HEADS.canonical(self.head)


def label_config(label_names: Sequence[str], binary_sigmoid: bool) -> dict:
    """The config entries for the classes: one sigmoid output for the second class, or one logit per class."""
    if binary_sigmoid:
        # One output: the probability of the second class (e.g. "fake"), which pipelines show by name.
        positive = str(label_names[1])
        return {"id2label": {0: positive}, "label2id": {positive: 0}, "num_labels": 1,
                "problem_type": "multi_label_classification"}
    return {**label_maps(label_names), "problem_type": "single_label_classification"}


def build_text_classifier(
    model_args, head_args: HeadArguments, label_names: Sequence[str], binary_sigmoid: bool = False
) -> PreTrainedModel:
    """A sequence classifier for `label_names` with the head `head_args.head` names.

    `model_args` are the recipe's model arguments: pretrained weights from `--model_name_or_path`, else
    random weights from `--config_name`. A saved BiGRU classifier loads back whichever head is asked for.
    """
    labels = label_config(label_names, binary_sigmoid)
    # Weights train in float32 whatever the checkpoint stores; --bf16/--fp16 add mixed precision.
    labels["dtype"] = torch.float32
    dropout = {} if head_args.classifier_dropout is None else {"classifier_dropout": head_args.classifier_dropout}
    if head_args.head == "auto":
        return load_model(AutoModelForSequenceClassification, model_args, **labels, **dropout)

    source = model_args.config_name or model_args.model_name_or_path
    if AutoConfig.from_pretrained(source, **model_args.pretrained_kwargs()).model_type == BiGRUConfig.model_type:
        return load_model(AutoModelForSequenceClassification, model_args, **labels, **dropout)  # a trained BiGRU model
    head = {"gru_hidden_size": head_args.gru_hidden_size, "gru_num_layers": head_args.gru_num_layers,
            "gru_dropout": head_args.gru_dropout, **labels, **dropout}
    if model_args.model_name_or_path is None:
        return BiGRUForSequenceClassification(BiGRUConfig(encoder=load_config(model_args), **head))
    encoder_kwargs = {**model_args.pretrained_kwargs(), "dtype": head.pop("dtype")}
    if model_args.config_name:
        encoder_kwargs["config"] = load_config(model_args)
    return BiGRUForSequenceClassification.from_pretrained_encoder(
        model_args.model_name_or_path, encoder_kwargs=encoder_kwargs, **head
    )
