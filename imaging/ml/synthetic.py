"""Seeded synthetic image sets for tests and the acceptance benchmarks.

``shape_image(shape, size, rng)``: one ``L`` image of a circle, square or triangle (random position,
size and rotation, bright on a Gaussian-noise background).
``shapes_dataset(n_per_class, *, size=64, seed=0, shapes=SHAPES) -> (images, labels, class_names)``
``write_shapes_folder(dest, n_per_class, *, size=64, seed=0)``: ``dest/<shape>/<shape>_000.png``.
``anomaly_sets(normal_shape, n_train, n_test_normal, n_test_anomalous, *, size=64, seed=0)``:
normal training images and a held-out mix with ``is_anomaly`` labels (the other shapes).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle")


def shape_image(shape: str, size: int, rng: np.random.Generator) -> Image.Image:
    noise = rng.normal(70, 25, (size, size)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(noise, mode="L")
    draw = ImageDraw.Draw(image)
    radius = rng.uniform(0.18, 0.32) * size
    cx, cy = rng.uniform(radius + 2, size - radius - 2, 2)
    fill = int(rng.integers(180, 256))
    angle = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        draw.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=fill)
    elif shape in ("square", "triangle"):
        corners = 4 if shape == "square" else 3
        points = [
            (
                cx + radius * math.cos(angle + 2 * math.pi * k / corners),
                cy + radius * math.sin(angle + 2 * math.pi * k / corners),
            )
            for k in range(corners)
        ]
        draw.polygon(points, fill=fill)
    else:
        raise ValueError(f"Unknown shape {shape!r}; use one of {', '.join(SHAPES)}.")
    return image


def shapes_dataset(
    n_per_class: int, *, size: int = 64, seed: int = 0, shapes: tuple[str, ...] = SHAPES
) -> tuple[list[Image.Image], list[int], list[str]]:
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index, shape in enumerate(shapes):
        for _ in range(n_per_class):
            images.append(shape_image(shape, size, rng))
            labels.append(index)
    return images, labels, list(shapes)


def write_shapes_folder(
    dest: str | os.PathLike, n_per_class: int, *, size: int = 64, seed: int = 0, shapes: tuple[str, ...] = SHAPES
) -> Path:
    dest = Path(dest)
    images, labels, names = shapes_dataset(n_per_class, size=size, seed=seed, shapes=shapes)
    counters = dict.fromkeys(names, 0)
    for image, label in zip(images, labels, strict=True):
        name = names[label]
        (dest / name).mkdir(parents=True, exist_ok=True)
        image.save(dest / name / f"{name}_{counters[name]:03d}.png")
        counters[name] += 1
    return dest


def anomaly_sets(
    normal_shape: str = "circle",
    n_train: int = 200,
    n_test_normal: int = 50,
    n_test_anomalous: int = 50,
    *,
    size: int = 64,
    seed: int = 0,
) -> tuple[list[Image.Image], list[Image.Image], np.ndarray]:
    """(normal training images, held-out test images, 1 = anomalous / 0 = normal for each test image)."""
    rng = np.random.default_rng(seed)
    others = [shape for shape in SHAPES if shape != normal_shape]
    train = [shape_image(normal_shape, size, rng) for _ in range(n_train)]
    test = [shape_image(normal_shape, size, rng) for _ in range(n_test_normal)]
    test += [shape_image(others[i % len(others)], size, rng) for i in range(n_test_anomalous)]
    labels = np.array([0] * n_test_normal + [1] * n_test_anomalous)
    return train, test, labels
