"""A multilayer perceptron on flattened pixels: the no-convolution, no-attention image baseline.

The default layers are the seed's CIFAR-10 baseline, 3072 (32x32x3) → 4096 → 2048 → 1024 → 512 →
256 → 64 → 10. `MLPForImageClassification` is a `PreTrainedModel` (model type `hf_tasks_mlp`) that
`import hf_tasks.modeling` registers with `AutoConfig` and `AutoModelForImageClassification`, so the
Trainer, `save_pretrained`, `from_pretrained` and `push_to_hub` treat it like any other image
classifier; run folders ship this self-contained file for `trust_remote_code=True`.
`model.base_model` is the hidden stack (`model.mlp`) and `model.classifier` the output layer, so
backbone freezing and backbone/head parameter counts work as for pretrained models.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_outputs import ImageClassifierOutput

SEED_HIDDEN_SIZES = (4096, 2048, 1024, 512, 256, 64)


class MLPImageClassifierConfig(PreTrainedConfig):
    """Input geometry (`image_size`, `num_channels`), hidden layer widths, activation and dropout."""

    model_type = "hf_tasks_mlp"

    image_size: int = 32
    num_channels: int = 3
    hidden_sizes: list[int] | tuple[int, ...] = SEED_HIDDEN_SIZES
    hidden_act: str = "relu"
    dropout: float = 0.0

    @property
    def input_size(self) -> int:
        return self.num_channels * self.image_size * self.image_size


class MLPForImageClassification(PreTrainedModel):
    """Flatten → [Linear → activation → Dropout] per hidden size → Linear(num_labels)."""

    config_class = MLPImageClassifierConfig
    base_model_prefix = "mlp"
    main_input_name = "pixel_values"
    input_modalities = ("image",)

    def __init__(self, config: MLPImageClassifierConfig):
        super().__init__(config)
        layers: list[nn.Module] = [nn.Flatten()]
        width = config.input_size
        for hidden_size in config.hidden_sizes:
            layers += [nn.Linear(width, hidden_size), ACT2FN[config.hidden_act], nn.Dropout(config.dropout)]
            width = hidden_size
        self.mlp = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        # He initialisation keeps activations from shrinking through the deep ReLU stack (the
        # generic normal(0.02) init of transformers would make the seed's 7 layers barely train).
        if isinstance(module, nn.Linear):
            init.kaiming_uniform_(module.weight, nonlinearity="relu")
            init.zeros_(module.bias)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> ImageClassifierOutput:
        expected = (self.config.num_channels, self.config.image_size, self.config.image_size)
        if tuple(pixel_values.shape[1:]) != expected:
            raise ValueError(
                f"The MLP takes images of shape {expected} (channels, height, width), got "
                f"{tuple(pixel_values.shape[1:])}; resize the images to {self.config.image_size} pixels "
                "(e.g. --image_size) or set the config's image_size."
            )
        logits = self.classifier(self.mlp(pixel_values.to(self.dtype)))
        loss = None if labels is None else nn.functional.cross_entropy(logits.float(), labels)
        return ImageClassifierOutput(loss=loss, logits=logits)


def build_mlp_classifier(
    label_names: Sequence[str],
    *,
    image_size: int = 32,
    num_channels: int = 3,
    hidden_sizes: Sequence[int] = SEED_HIDDEN_SIZES,
    hidden_act: str = "relu",
    dropout: float = 0.0,
) -> MLPForImageClassification:
    """A randomly initialised MLP classifier for `label_names`."""
    names = [str(name) for name in label_names]
    config = MLPImageClassifierConfig(
        image_size=image_size,
        num_channels=num_channels,
        hidden_sizes=list(hidden_sizes),
        hidden_act=hidden_act,
        dropout=dropout,
        id2label=dict(enumerate(names)),
        label2id={name: index for index, name in enumerate(names)},
    )
    return MLPForImageClassification(config)
