"""Building the audio classifier `--head` asks for, from class names (never from a task).

Kept apart from `hf_tasks.modeling.audio`, which run folders ship as self-contained model code and
which may therefore import nothing from hf_tasks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from hf_tasks.errors import BadInputError
from hf_tasks.modeling.audio import PooledAudioClassifier, PooledAudioClassifierConfig
from hf_tasks.modeling.auto import load_config, load_model
from hf_tasks.modeling.head_choice import AUDIO_CLASSIFIER_HEADS
from hf_tasks.modeling.labels import label_maps

logger = logging.getLogger(__name__)

@dataclass
class AudioHeadArguments:
    """The classifier on the speech encoder."""

    head: str = AUDIO_CLASSIFIER_HEADS.dataclass_field()
    head_hidden_size: int = field(default=256, metadata={"help": "Width of the pooled head's hidden layer."})
    head_dropout: float = field(default=0.1, metadata={"help": "Dropout of the pooled head."})
    class_weighted_loss: bool = field(
        default=False, metadata={"help": "Weigh the loss by inverse training class frequency (needs --head pooled)."}
    )

    def __post_init__(self):
        self.head = AUDIO_CLASSIFIER_HEADS.canonical(self.head)


def class_weights(data: Mapping[str, Any], *, oversampled: bool = False) -> list[float]:
    """Inverse-frequency weights n / (classes · n_c) of the training split's labels (1 for absent classes).

    `data` holds splits with a `ClassLabel` column `label` (a dataset adapter's `DatasetDict`); clips
    without a label (-1) are not counted. With `oversampled`, training repeats every present class up
    to the largest one, so the model sees balanced classes and every weight is 1.
    """
    if "train" not in data:
        raise BadInputError("Class weights need a training split; give training data or drop --class_weighted_loss.")
    train = data["train"]
    labels = np.asarray(train["label"])
    counts = np.bincount(labels[labels >= 0], minlength=train.features["label"].num_classes)
    if oversampled:
        counts = np.where(counts > 0, counts.max(), 0)
    present = counts > 0
    weights = np.ones(len(counts))
    weights[present] = counts[present].sum() / (present.sum() * counts[present])
    return weights.round(6).tolist()


def load_audio_classifier(model_args, head_args: AudioHeadArguments, label_names: Sequence[str], feature_extractor,
                          weights: list[float] | None = None):
    """The model `--head` asks for, with the classes of `label_names` and `weights` for its loss
    (`class_weights`; pooled head only). Freezing (the feature encoder's too) is the regime step's.

    `auto` loads the checkpoint's `AutoModelForAudioClassification` (also a saved pooled classifier);
    `pooled` puts the seed's head on the encoder of `--model_name_or_path` (or of `--config_name`,
    randomly initialised). Whether the encoder takes an attention mask follows the feature extractor.
    """
    from transformers import AutoModelForAudioClassification

    labels = label_maps(label_names)
    takes_mask = bool(feature_extractor.return_attention_mask)
    if takes_mask and getattr(load_config(model_args), "feat_extract_norm", None) == "group":
        logger.warning(
            "The feature extractor asks for an attention mask, but the encoder's feature encoder uses group norm "
            "(such checkpoints were trained without masks); following the feature extractor. Set "
            "return_attention_mask to false in its preprocessor_config.json if that is wrong."
        )
    if head_args.head == "auto":
        config = load_config(model_args)
        if isinstance(config, PooledAudioClassifierConfig):
            model = load_model(AutoModelForAudioClassification, model_args, **labels, class_weights=weights,
                               encoder_takes_attention_mask=takes_mask)
        elif weights is not None:
            raise BadInputError(
                "--class_weighted_loss needs --head pooled (the stock audio classification heads compute an "
                "unweighted loss); or balance with --oversample."
            )
        else:
            model = load_model(AutoModelForAudioClassification, model_args, **labels)
    else:
        config = PooledAudioClassifierConfig(
            encoder=load_config(model_args),
            head_hidden_size=head_args.head_hidden_size,
            head_dropout=head_args.head_dropout,
            encoder_takes_attention_mask=takes_mask,
            class_weights=weights,
            **labels,
        )
        model = PooledAudioClassifier.from_encoder(
            model_args.model_name_or_path, config, **model_args.pretrained_kwargs()
        )
    return model


def takes_attention_mask(model, feature_extractor) -> bool:
    """Whether `model`'s batches carry an attention mask.

    The pooled head always pools with one (and hands it to its encoder only when the encoder takes
    it), whichever `--head` loaded it; stock heads follow the feature extractor, because group-norm
    checkpoints (hubert-base) must not get one.
    """
    return isinstance(model, PooledAudioClassifier) or bool(feature_extractor.return_attention_mask)
