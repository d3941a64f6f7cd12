"""Building the audio classifier `--head` asks for, from the classes (never from a task): `build_model`, the
builder contract every model family shares (`hf_tasks.modeling`).

Kept apart from `hf_tasks.modeling.audio`, which run folders ship as self-contained model code and
which may therefore import nothing from hf_tasks.
"""

from __future__ import annotations

import logging

from transformers import PreTrainedModel

from hf_tasks.errors import BadInputError
from hf_tasks.modeling.audio import PooledAudioClassifier, PooledAudioClassifierConfig
from hf_tasks.modeling.auto import load_config, load_model
from hf_tasks.modeling.labels import ClassLabels
from hf_tasks.options import AudioHeadArguments, ModelArguments

logger = logging.getLogger(__name__)


def build_model(model_args: ModelArguments, head_args: AudioHeadArguments, labels: ClassLabels,
                processor) -> PreTrainedModel:
    """The audio classifier `--head` asks for, for `labels` (their weights weigh the loss: pooled head only);
    `processor` is the feature extractor, whose `return_attention_mask` says whether the encoder takes a mask.
    Freezing (the feature encoder's too) is the regime step's.

    `auto` loads the checkpoint's `AutoModelForAudioClassification` (also a saved pooled classifier);
    `pooled` puts the seed's head on the encoder of `--model_name_or_path` (or of `--config_name`,
    randomly initialised).
    """
    from transformers import AutoModelForAudioClassification

    config = labels.config()
    weights = list(labels.weights) if labels.weights is not None else None
    takes_mask = bool(processor.return_attention_mask)
    given = load_config(model_args)  # the encoder's config, or a saved pooled classifier's
    if takes_mask and getattr(given, "feat_extract_norm", None) == "group":
        logger.warning(
            "The feature extractor asks for an attention mask, but the encoder's feature encoder uses group norm "
            "(such checkpoints were trained without masks); following the feature extractor. Set "
            "return_attention_mask to false in its preprocessor_config.json if that is wrong."
        )
    if head_args.head == "pooled":
        pooled = PooledAudioClassifierConfig(
            encoder=given,
            head_hidden_size=head_args.head_hidden_size,
            head_dropout=head_args.head_dropout,
            encoder_takes_attention_mask=takes_mask,
            class_weights=weights,
            **config,
        )
        return PooledAudioClassifier.from_encoder(model_args.model_name_or_path, pooled,
                                                  **model_args.pretrained_kwargs())
    if isinstance(given, PooledAudioClassifierConfig):
        return load_model(AutoModelForAudioClassification, model_args, **config, class_weights=weights,
                          encoder_takes_attention_mask=takes_mask)
    if weights is not None:
        raise BadInputError(
            "--class_weighted_loss needs --head pooled (the stock audio classification heads compute an "
            "unweighted loss); or balance with --oversample."
        )
    return load_model(AutoModelForAudioClassification, model_args, **config)


def takes_attention_mask(model, feature_extractor) -> bool:
    """Whether `model`'s batches carry an attention mask.

    The pooled head always pools with one (and hands it to its encoder only when the encoder takes
    it), whichever `--head` loaded it; stock heads follow the feature extractor, because group-norm
    checkpoints (hubert-base) must not get one.
    """
    return isinstance(model, PooledAudioClassifier) or bool(feature_extractor.return_attention_mask)
