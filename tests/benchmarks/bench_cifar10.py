"""CIFAR-10 recipe throughput: training images/second of the model step, and of the image pipeline.

    python -m tests.benchmarks.bench_cifar10              # CPU: the tiny config's model (test_resnet, 32 px)
    python -m tests.benchmarks.bench_cifar10 --threads 1
    python -m tests.benchmarks.bench_cifar10              # with CUDA: deit_base_distilled_patch16_224,
                                                          # 224 px, batch 512, bf16 autocast

The model step is what the Trainer runs per batch (forward with labels, backward, Adam step) on
random pixels already on the device, with the paper's trainable block (`--trainable_modules`) and
head. The pipeline figure is one process decoding CIFAR-sized PNGs and applying the training
transform (flip, resize to the model's size and to the paper's 224 px, normalise): divide the
model figure by it for the `dataloader_num_workers` that keep the device fed. Random weights
(`pretrained=False`), offline. Writes results/cifar10.json and appends a row to results/cifar10.md.
"""

from __future__ import annotations

import argparse
import io
import time

import numpy as np
import torch
from PIL import Image

from hf_tasks.modeling.timm_classifier import TimmForImageClassification
from hf_tasks.surgery import parameter_counts, train_only
from hf_tasks.surgery.regime import trainable_parts
from hf_tasks.tasks.image import CIFAR10_MEAN, CIFAR10_STD, decode_image, image_transform
from tests.benchmarks.record import record
from tests.caches import use_private_caches

CPU_DEFAULTS = {"model": "test_resnet", "image_size": 32, "batch_size": 64, "trainable_modules": "all", "bf16": False}
CUDA_DEFAULTS = {
    "model": "deit_base_distilled_patch16_224",
    "image_size": 224,
    "batch_size": 512,
    "trainable_modules": "paper",
    "bf16": True,
}


def model_images_per_second(args, device: torch.device) -> tuple[float, dict[str, int]]:
    torch.manual_seed(0)
    model = TimmForImageClassification.from_timm(args.model, [str(i) for i in range(10)], pretrained_backbone=False)
    train_only(model, trainable_parts(model, args.trainable_modules))
    counts = parameter_counts(model)
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)
    pixels = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
            loss = model(pixel_values=pixels, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * args.batch_size / (time.perf_counter() - began), counts


def pipeline_images_per_second(image_size: int, images: int = 512) -> float:
    """One process: decode 32x32 PNG bytes and apply the training transform."""
    rng = np.random.default_rng(0)
    encoded = []
    for _ in range(images):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)).save(buffer, format="PNG")
        encoded.append({"bytes": buffer.getvalue(), "path": None})
    transform = image_transform(image_size, CIFAR10_MEAN, CIFAR10_STD, horizontal_flip=0.5)
    began = time.perf_counter()
    for index, cell in enumerate(encoded):
        transform(decode_image(cell, f"row {index}"))
    return images / (time.perf_counter() - began)


def main() -> None:
    cuda = torch.cuda.is_available()
    defaults = CUDA_DEFAULTS if cuda else CPU_DEFAULTS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=defaults["model"])
    parser.add_argument("--image_size", type=int, default=defaults["image_size"])
    parser.add_argument("--batch_size", type=int, default=defaults["batch_size"])
    parser.add_argument("--trainable_modules", default=defaults["trainable_modules"])
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=defaults["bf16"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice).")
    args = parser.parse_args()
    use_private_caches("hf_tasks-bench-")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if cuda else "cpu")
    model_rate, counts = model_images_per_second(args, device)
    record("cifar10", {
        "model": args.model,
        "trainable": args.trainable_modules,
        "trainable_params": counts["trainable_params"],
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "precision": "bf16 autocast" if args.bf16 else "fp32",
        "cpu_threads": torch.get_num_threads(),
        "train_images_per_second": round(model_rate, 1),
        "pipeline_images_per_second_per_process": round(pipeline_images_per_second(args.image_size), 1),
        "pipeline_224px_images_per_second_per_process": round(pipeline_images_per_second(224), 1),
    })


if __name__ == "__main__":
    main()
