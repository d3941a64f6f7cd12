"""A speech encoder with the seed's head: masked mean over time → FC → tanh → FC.

`PooledAudioClassifier` wraps any `transformers` speech encoder (HuBERT, wav2vec2, WavLM, ...) as a
`PreTrainedModel`, so it saves, reloads and pushes like any Hugging Face model (`import hf_tasks.modeling`
registers it; run folders ship this self-contained file for `trust_remote_code=True`). Unlike the stock
`*ForSequenceClassification` heads it

- pools over real frames only, even for encoders that must not see an attention mask (group-norm
  wav2vec2/HuBERT-base checkpoints): the collator always sends the mask, the head forwards it to the
  encoder only when `encoder_takes_attention_mask`;
- in evaluation, runs such encoders on each clip at its own length, because their group norm and
  unmasked attention would otherwise see the padding: padding never changes a clip's prediction;
- takes optional class weights for the cross-entropy loss (class balancing without resampling).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import SequenceClassifierOutput

# Relative, so that the copy shipped beside a saved model (hf_tasks.portable) finds its sibling file.
from .pruned_heads import remove_recorded_heads


class PooledAudioClassifierConfig(PreTrainedConfig):
    """The encoder's config (`encoder`) plus the head's settings."""

    model_type = "hf_tasks_pooled_audio"
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="hubert")}

    encoder: PreTrainedConfig | dict | None = None
    head_hidden_size: int = 256
    head_dropout: float = 0.1
    encoder_takes_attention_mask: bool = False
    class_weights: list[float] | None = None


class PooledAudioClassifier(PreTrainedModel):
    config_class = PooledAudioClassifierConfig
    base_model_prefix = "encoder"
    main_input_name = "input_values"
    supports_gradient_checkpointing = True
    # The constructor removes the attention heads `config.pruned_heads` records, so a pruned model
    # reloads with plain `from_pretrained`.
    rebuilds_pruned_heads = True
    # The head's hidden layer was called `dense` before it got a name no encoder module ends with (peft
    # finds the modules LoRA saves with the adapter by name suffix, and HuBERT has `output_dense`s).
    LEGACY_KEYS = {r"^dense\.": "head_dense."}

    def __init__(self, config: PooledAudioClassifierConfig):
        super().__init__(config)
        if config.class_weights is not None and len(config.class_weights) != config.num_labels:
            raise ValueError(
                f"class_weights has {len(config.class_weights)} entries for {config.num_labels} classes."
            )
        self.encoder = AutoModel.from_config(config.encoder)
        self.dropout = nn.Dropout(config.head_dropout)
        self.head_dense = nn.Linear(config.encoder.hidden_size, config.head_hidden_size)
        self.classifier = nn.Linear(config.head_hidden_size, config.num_labels)
        self.post_init()
        remove_recorded_heads(self)

    @classmethod
    def from_encoder(
        cls, encoder_name_or_path: str | None, config: PooledAudioClassifierConfig, **pretrained_kwargs
    ) -> "PooledAudioClassifier":
        """A classifier with a new head on pretrained encoder weights (hub id or folder); with
        `encoder_name_or_path=None` the encoder keeps its random initialisation."""
        model = cls(config)
        if encoder_name_or_path is not None:
            model.encoder = AutoModel.from_pretrained(encoder_name_or_path, config=config.encoder, **pretrained_kwargs)
        return model

    @classmethod
    def from_pretrained(cls, *args, **kwargs) -> "PooledAudioClassifier":
        """`PreTrainedModel.from_pretrained`, also for checkpoints saved with the head's earlier names (which
        are not written back: the model saves under the current ones)."""
        kwargs.setdefault("key_mapping", cls.LEGACY_KEYS)
        model = super().from_pretrained(*args, **kwargs)
        conversions = getattr(model, "_weight_conversions", None)
        if conversions:
            model._weight_conversions = [conversion for conversion in conversions
                                         if list(getattr(conversion, "source_patterns", ())) != list(cls.LEGACY_KEYS)]
        return model

    def freeze_feature_encoder(self) -> None:
        """Keep the convolutional waveform encoder fixed (the usual setting when fine-tuning)."""
        feature_extractor = getattr(self.encoder, "feature_extractor", None)
        if feature_extractor is None:
            raise ValueError(f"{type(self.encoder).__name__} has no convolutional feature encoder to freeze.")
        feature_extractor._freeze_parameters()

    def _frame_mask(self, frames: int, attention_mask: torch.Tensor) -> torch.Tensor:
        lengths = self.encoder._get_feat_extract_output_lengths(attention_mask.sum(-1)).to(torch.long)
        return torch.arange(frames, device=attention_mask.device)[None, :] < lengths[:, None]

    def pooled(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mean of the encoder's last hidden states over each clip's real frames: (batch, hidden)."""
        encoder_mask = attention_mask if self.config.encoder_takes_attention_mask else None
        hidden = self.encoder(input_values, attention_mask=encoder_mask).last_hidden_state
        if attention_mask is None:
            return hidden.mean(dim=1)
        frames = self._frame_mask(hidden.shape[1], attention_mask).unsqueeze(-1).to(hidden.dtype)
        return (hidden * frames).sum(dim=1) / frames.sum(dim=1).clamp(min=1.0)

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        padded = attention_mask is not None and bool((attention_mask == 0).any())
        if padded and not self.training and not self.config.encoder_takes_attention_mask:
            lengths = attention_mask.sum(-1).tolist()
            pooled = torch.cat([self.pooled(input_values[row : row + 1, :length])
                                for row, length in enumerate(lengths)])
        else:
            pooled = self.pooled(input_values, attention_mask)
        hidden = torch.tanh(self.head_dense(self.dropout(pooled)))
        logits = self.classifier(self.dropout(hidden))
        loss = None
        if labels is not None:
            weight = None
            if self.config.class_weights is not None:
                weight = torch.tensor(self.config.class_weights, dtype=logits.dtype, device=logits.device)
            loss = nn.functional.cross_entropy(logits, labels.view(-1), weight=weight)
        return SequenceClassifierOutput(loss=loss, logits=logits)
