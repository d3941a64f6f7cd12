"""Synthetic image classification data: coloured shapes on noisy backgrounds, as an ImageFolder tree.

The class is the shape; colour, size, position and background are random, so a model has to learn
shape, not colour. Images are generated at run time (nothing is committed):

    python -m hf_tasks.samples.images runs/data/shapes
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from hf_tasks.errors import OneLineArgumentParser, one_line_errors
from hf_tasks.samples.owned_folder import write_owned_folder

SHAPES = ("circle", "square", "triangle", "cross")


def draw_shape(shape: str, rng: np.random.Generator, size: int = 32) -> Image.Image:
    """One RGB `size`x`size` image of `shape` in a random colour on a noisy random background."""
    background = rng.integers(0, 256, size=3)
    pixels = np.clip(background + rng.normal(0, 20, size=(size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    # A fill colour far enough from the background that the shape is visible.
    fill = (background + rng.integers(96, 160, size=3)) % 256
    extent = rng.uniform(0.45, 0.8) * size
    left, top = rng.uniform(0, size - extent, size=2)
    right, bottom = left + extent, top + extent
    colour = tuple(int(channel) for channel in fill)
    draw = ImageDraw.Draw(image)
    if shape == "circle":
        draw.ellipse((left, top, right, bottom), fill=colour)
    elif shape == "square":
        draw.rectangle((left, top, right, bottom), fill=colour)
    elif shape == "triangle":
        draw.polygon([(left, bottom), (right, bottom), ((left + right) / 2, top)], fill=colour)
    elif shape == "cross":
        bar = extent / 3
        draw.rectangle((left, top + bar, right, bottom - bar), fill=colour)
        draw.rectangle((left + bar, top, right - bar, bottom), fill=colour)
    else:
        raise ValueError(f"Unknown shape {shape!r}; choose from {SHAPES}.")
    return image


def write_shapes_tree(
    root: str | Path,
    *,
    train_per_class: int = 64,
    test_per_class: int = 16,
    validation_per_class: int = 0,
    size: int = 32,
    seed: int = 0,
) -> Path:
    """Write `root/{train,test[,validation]}/<shape>/<n>.png` and return `root`: a new or empty folder,
    or one this generator made (see `hf_tasks.samples.owned_folder`; anything else stops with BadInputError)."""
    counts = {"train": train_per_class, "validation": validation_per_class, "test": test_per_class}

    def write(staging: Path) -> None:
        rng = np.random.default_rng(seed)
        for split, count in counts.items():
            for shape in SHAPES:
                folder = staging / split / shape
                if count:
                    folder.mkdir(parents=True, exist_ok=True)
                for index in range(count):
                    draw_shape(shape, rng, size).save(folder / f"{index:04d}.png")

    return write_owned_folder(root, "shapes", {**counts, "size": size, "seed": seed}, write)


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="Folder to write the ImageFolder tree into.")
    parser.add_argument("--train_per_class", type=int, default=64)
    parser.add_argument("--test_per_class", type=int, default=16)
    parser.add_argument("--validation_per_class", type=int, default=0)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_shapes_tree(
        args.root,
        train_per_class=args.train_per_class,
        test_per_class=args.test_per_class,
        validation_per_class=args.validation_per_class,
        size=args.size,
        seed=args.seed,
    )
    print(f"Wrote {args.root}")


if __name__ == "__main__":
    with one_line_errors():
        main()
