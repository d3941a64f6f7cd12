"""A bidirectional GRU over a transformer encoder's token states, as a Hugging Face model.

    encoder (any `AutoModel` backbone) → token states → BiGRU → [last forward state; last backward
    state] → dropout → linear

Padded positions never reach the GRU: sequences are packed by their attention-mask lengths, so the
same text gives the same logits however much padding its batch has. A padding-free batch (one row of
concatenated sequences, position ids restarting at 0 at each, no attention mask) gives the same logits
too: the GRU runs over each sequence's own span.

`BiGRUConfig` holds the backbone's config and the head options. `import hf_tasks.modeling` registers
both classes with `AutoConfig` / `AutoModelForSequenceClassification`; a run folder also ships this
file and `pruned_heads.py` (they import only torch and transformers), so it loads with
`AutoModelForSequenceClassification.from_pretrained(folder_or_hub_id, trust_remote_code=True)` anywhere.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence
from transformers import AutoConfig, AutoModel, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import SequenceClassifierOutput

# Relative, so that the copy shipped beside a saved model (hf_tasks.portable) finds its sibling file.
from .pruned_heads import remove_recorded_heads


class BiGRUConfig(PreTrainedConfig):
    """Config of `BiGRUForSequenceClassification`: `encoder` is the backbone's own config.

    `num_labels=1` means one sigmoid output trained with binary cross-entropy; more labels mean a
    softmax trained with cross-entropy.
    """

    model_type = "bigru_classifier"
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder: PreTrainedConfig | dict | None = None
    gru_hidden_size: int = 256
    gru_num_layers: int = 1
    gru_dropout: float = 0.0
    classifier_dropout: float = 0.1

    def get_text_config(self, decoder=None, encoder=None):
        """The backbone's config: generation and embedding utilities look here for vocab sizes."""
        return self.encoder


class BiGRUForSequenceClassification(PreTrainedModel):
    """Sequence classifier: encoder token states → packed BiGRU → final states → linear."""

    config_class = BiGRUConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    # The GRU reads every token state (a feature cache must keep them all).
    reads_token_states = True
    # Reads padding-free batches itself (hf_tasks.modeling.padding_free): one GRU pass per sequence span.
    reads_flattened_sequences = True
    # The constructor removes the attention heads `config.pruned_heads` records, so a pruned model
    # reloads with plain `from_pretrained`.
    rebuilds_pruned_heads = True
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True

    def __init__(self, config: BiGRUConfig):
        super().__init__(config)
        self.encoder = _without_pooler(AutoModel.from_config(config.encoder))
        self.gru = nn.GRU(
            input_size=config.encoder.hidden_size,
            hidden_size=config.gru_hidden_size,
            num_layers=config.gru_num_layers,
            dropout=config.gru_dropout if config.gru_num_layers > 1 else 0.0,
            batch_first=True,
            bidirectional=True,
        )
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(2 * config.gru_hidden_size, config.num_labels)
        self.post_init()
        remove_recorded_heads(self)

    @classmethod
    def from_pretrained_encoder(
        cls, encoder_name_or_path: str, *, encoder_kwargs: dict | None = None, **config_kwargs
    ) -> BiGRUForSequenceClassification:
        """A model whose encoder holds pretrained weights (hub id or local folder) and whose GRU and
        classifier are new. `config_kwargs` are `BiGRUConfig` fields (`num_labels`, `id2label`,
        `gru_hidden_size`, ...); `encoder_kwargs` go to `AutoModel.from_pretrained` (revision, dtype...)."""
        encoder = AutoModel.from_pretrained(encoder_name_or_path, **(encoder_kwargs or {}))
        model = cls(BiGRUConfig(encoder=encoder.config, **config_kwargs))
        model.encoder = _without_pooler(encoder)
        return model

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> SequenceClassifierOutput:
        shape = (input_ids if input_ids is not None else inputs_embeds).shape[:2]
        device = (input_ids if input_ids is not None else inputs_embeds).device
        if attention_mask is None and position_ids is not None and shape[0] == 1:
            return self._forward_flattened(input_ids, token_type_ids, inputs_embeds, labels, position_ids)
        if attention_mask is None:
            attention_mask = torch.ones(shape, dtype=torch.long, device=device)
        lengths = attention_mask.sum(dim=1)
        positions = torch.arange(shape[1], device=device)
        if not torch.equal(attention_mask.bool(), positions[None, :] < lengths[:, None]):
            raise ValueError(
                "BiGRUForSequenceClassification needs right padding (real tokens first, then padding); "
                "set tokenizer.padding_side = 'right'."
            )
        encoder_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "inputs_embeds": inputs_embeds}
        if token_type_ids is not None:
            encoder_inputs["token_type_ids"] = token_type_ids
        if position_ids is not None:
            encoder_inputs["position_ids"] = position_ids
        states = self.encoder(**encoder_inputs, return_dict=True).last_hidden_state
        packed = pack_padded_sequence(
            states, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        return self._classify(packed, labels)

    def _forward_flattened(self, input_ids, token_type_ids, inputs_embeds, labels, position_ids):
        """One row of concatenated sequences whose position ids restart at 0 at each: the encoder keeps
        them apart by those ids, and the GRU reads each sequence's span on its own."""
        encoder_inputs = {"input_ids": input_ids, "inputs_embeds": inputs_embeds, "position_ids": position_ids}
        if token_type_ids is not None:
            encoder_inputs["token_type_ids"] = token_type_ids
        states = self.encoder(**encoder_inputs, return_dict=True).last_hidden_state[0]
        starts = (position_ids[0] == 0).nonzero().squeeze(-1).tolist()
        spans = [states[start:end] for start, end in zip(starts, [*starts[1:], states.shape[0]])]
        return self._classify(pack_sequence(spans, enforce_sorted=False), labels)

    def _classify(self, packed, labels: torch.Tensor | None) -> SequenceClassifierOutput:
        _, final = self.gru(packed)
        # `final` is (layers * 2, batch, hidden) in the batch's own order; the last two rows are the
        # top layer's forward and backward directions.
        pooled = torch.cat([final[-2], final[-1]], dim=-1)
        logits = self.classifier(self.dropout(pooled))
        loss = None if labels is None else classification_loss(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy for one output (labels 0/1 of any shape), else cross-entropy."""
    if logits.shape[-1] == 1:
        return nn.functional.binary_cross_entropy_with_logits(logits.view(-1), labels.view(-1).to(logits.dtype))
    return nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1).long())


def _without_pooler(encoder: nn.Module) -> nn.Module:
    # The GRU reads token states; a pooler would be dead weight that DDP reports as unused.
    if isinstance(getattr(encoder, "pooler", None), nn.Module):
        encoder.pooler = None
    return encoder
