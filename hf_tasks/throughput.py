"""What every run reports about its speed: real work per second (tokens that are not padding, images, or
seconds of audio) for training and each evaluation, and on a GPU whose dense bf16/fp16 peak is known,
the model FLOPs utilisation (MFU) of a transformer encoder.

`Throughput` counts each batch's work as it passes (`Task.batch_work`) on the batch's device, so no
step waits for the GPU; the totals are read once, when the figures are made. Model FLOPs are what the
real tokens need: 6 per matmul weight per token in training (forward 2, backward 4; 2 in evaluation),
plus attention scores and their weighted sum, 12 (training) or 4 (evaluation) x layers x hidden x the
sum of squared sequence lengths. Padding is computed but not credited; `tests/test_throughput.py`
checks the count against `torch.utils.flop_counter`.
"""

from __future__ import annotations

import torch
from torch import nn

#: What `Task.batch_work` counts, by task family: text, images, speech.
WORK_UNITS = ("tokens", "images", "audio_seconds")
# Dense (no sparsity) bf16/fp16 tensor-core peaks from the vendors' data sheets, in TFLOP/s; the first
# name that occurs in torch.cuda.get_device_name() wins, so the more specific names come first.
PEAK_DENSE_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.4,
    "H200": 989.4,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10G": 70.0,
    "A10": 125.0,
}


def peak_tflops(device_name: str) -> float | None:
    """The device's dense bf16/fp16 peak, None for a device not in `PEAK_DENSE_TFLOPS`."""
    return next((peak for name, peak in PEAK_DENSE_TFLOPS.items() if name in device_name), None)


def dense_peak_tflops(training_args) -> float | None:
    """The peak MFU is measured against: the CUDA device's dense peak when the run trains in bf16 or fp16."""
    if training_args.device.type != "cuda" or not (training_args.bf16 or training_args.fp16):
        return None
    return peak_tflops(torch.cuda.get_device_name(training_args.device))


def throughput_text(metrics: dict, prefix: str) -> str | None:
    """"1,234.5 tokens/s, MFU 12.3%" from a run's figures (MFU where it was counted); None without them."""
    unit = next((unit for unit in WORK_UNITS if f"{prefix}_{unit}_per_second" in metrics), None)
    if unit is None:
        return None
    text = f"{metrics[f'{prefix}_{unit}_per_second']:,.1f} {unit.replace('_', ' ')}/s"
    mfu = metrics.get(f"{prefix}_mfu_percent")
    return text if mfu is None else f"{text}, MFU {mfu:.1f}%"


def matmul_parameters(model: nn.Module) -> int:
    """Weights that multiply every token: all Linear layers (embeddings are lookups, not matmuls)."""
    return sum(module.weight.numel() for module in model.modules() if isinstance(module, nn.Linear))


def encoder_flops(model: nn.Module, tokens: float, squared_lengths: float, training: bool = True) -> float | None:
    """Model FLOPs of a transformer encoder over sequences holding `tokens` real tokens whose squared
    lengths sum to `squared_lengths`; None for a model without `num_hidden_layers` and `hidden_size`."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers, hidden = getattr(text_config, "num_hidden_layers", None), getattr(text_config, "hidden_size", None)
    if not layers or not hidden:
        return None
    passes = 3.0 if training else 1.0  # backward costs twice the forward
    return passes * (2.0 * matmul_parameters(model) * tokens + 4.0 * layers * hidden * squared_lengths)


def squared_sequence_lengths(inputs: dict) -> torch.Tensor | None:
    """The sum of squared real lengths of the batch's sequences, on their device: from the attention mask
    of a padded batch, from the position ids of a flattened one (positions 0..n-1 sum 2p+1 to n^2)."""
    mask = inputs.get("attention_mask")
    if mask is not None and mask.dim() == 2:
        return (mask.sum(dim=1) ** 2).sum()
    positions = inputs.get("position_ids")
    if positions is not None:
        return (2 * positions + 1).sum()
    ids = inputs.get("input_ids")
    return None if ids is None else torch.tensor(ids.shape[1] ** 2 * ids.shape[0])


class Throughput:
    """Work and squared sequence lengths of the batches one phase (training, one evaluation) consumed."""

    def __init__(self):
        self.work: torch.Tensor | float = 0.0
        self.squared_lengths: torch.Tensor | float | None = 0.0

    def add(self, work, inputs: dict) -> None:
        self.work = self.work + work
        if self.squared_lengths is not None:
            squared = squared_sequence_lengths(inputs)
            self.squared_lengths = None if squared is None else self.squared_lengths + squared

    def figures(self, prefix: str, unit: str, seconds: float, model: nn.Module, peak: float | None,
                training: bool, reduce=lambda value: value) -> dict[str, float]:
        """`{prefix}_{unit}_per_second` and, where `peak` (TFLOP/s) and the FLOPs are known,
        `{prefix}_mfu_percent`. `reduce` sums a tensor over the processes of a distributed run."""
        if seconds <= 0:
            return {}
        work = float(reduce(torch.as_tensor(self.work, dtype=torch.float64)))
        figures = {f"{prefix}_{unit}_per_second": round(work / seconds, 2)}
        if peak and unit == "tokens" and self.squared_lengths is not None:
            squared = float(reduce(torch.as_tensor(self.squared_lengths, dtype=torch.float64)))
            flops = encoder_flops(model, work, squared, training)
            if flops is not None:
                figures[f"{prefix}_mfu_percent"] = round(100 * flops / seconds / (peak * 1e12), 2)
        return figures
