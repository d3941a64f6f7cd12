"""Tiny model folders for the offline demo and tests: a config plus a tokenizer trained on sample text.

The folders hold no weights: recipes build the model from `--config_name` when
`--model_name_or_path` is unset, exactly as they would start a real model from scratch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import BertConfig, BertTokenizer

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_wordpiece_tokenizer(texts: Iterable[str], vocab_size: int = 2000) -> BertTokenizer:
    """A lower-casing BERT WordPiece tokenizer trained on `texts` (Persian or English)."""
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=1)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return BertTokenizer(vocab=tokenizer.get_vocab(), do_lower_case=True)


def write_tiny_bert(
    folder: Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 2000,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    num_attention_heads: int = 4,
    max_position_embeddings: int = 512,
    **config_overrides,
) -> Path:
    """Write `config.json` and tokenizer files of a tiny BERT into `folder` and return it."""
    folder = Path(folder)
    tokenizer = train_wordpiece_tokenizer(texts, vocab_size)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        **config_overrides,
    )
    tokenizer.save_pretrained(folder)
    config.save_pretrained(folder)
    return folder
