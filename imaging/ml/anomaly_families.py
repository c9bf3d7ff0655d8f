"""Seeded anomaly families, applied to any generator of normal images: for the detector tests and the benchmark.

A *scene* draws normal images. It samples parameters (``sample(rng) -> dict``) and renders them in layers
(``render(params, size, *, shape=False, texture=False) -> Layers``): a background, a foreground and the
foreground's alpha (where the object is). ``shape=True`` renders the same scene with the object(s) in a different
shape, ``texture=True`` with a different surface texture. Scenes live beside their users — the benchmark
(``benchmarks/anomaly_families.py``: pills, cells, weave, tissue, DICOM) and the tests each have their own, so the
detector is never tuned to one generator. ``Scene.families`` lists the families that make sense for it.

The families (``make_images(scene, family, n, size, rng)``): each image is a fresh normal sample, then changed:

==============  ==============================================================================  =============
family          what changes                                                                    pixel mask
==============  ==============================================================================  =============
shape           the object(s) drawn as another shape, same place, size and colour              —
spot            a disc of 3–6 % of the side, ±0.35 against its surroundings                     the disc
scratch         a 1–2 % wide line, 25–45 % of the side long, ±0.3 against its surroundings     the line
missing_part    a disc of 8–12 % of the side, centred on the object's outline, cut out of it    the cut
texture         the object's surface striped, or the scene's texture changed                   —
intensity       every pixel ±0.18–0.28                                                           —
contrast        contrast about the mean × 0.35–0.5 or × 1.7–2.2                                  —
noise           Gaussian noise σ 0.07–0.10 (normal images carry σ 0.015)                         —
rotation        the image turned a quarter turn (90° or 270°)                                  —
crop            a window of 50–65 % of the side enlarged to the full image                      —
lesion          a soft disc of 4–7 % of the side inside the body (pixels ≥ 0.2), ±0.2–0.3       the disc
==============  ==============================================================================  =============

Pixel values are floats in [0, 1] (H × W × 3) until ``to_image`` turns them into an 8-bit ``L`` or ``RGB`` PIL
image, so anomalies are quantised exactly as real images are. Everything is drawn from the ``rng`` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

FAMILIES = (
    "shape",
    "spot",
    "scratch",
    "missing_part",
    "texture",
    "intensity",
    "contrast",
    "noise",
    "rotation",
    "crop",
    "lesion",
)
# Families whose defect has a pixel mask: pixel AUROC is measured on these.
LOCAL_FAMILIES = ("spot", "scratch", "missing_part", "lesion")
# Families that need no layers: they apply to any image (DICOM slices included).
GENERIC_FAMILIES = ("spot", "scratch", "intensity", "contrast", "noise", "rotation", "crop", "lesion")
SENSOR_NOISE = 0.015
SUPERSAMPLE = 4


@dataclass
class Layers:
    """A rendered scene: background and foreground colours (H × W × 3) and where the foreground shows (H × W)."""

    background: np.ndarray
    foreground: np.ndarray
    alpha: np.ndarray

    def composite(self) -> np.ndarray:
        alpha = self.alpha[..., None]
        return self.background * (1 - alpha) + self.foreground * alpha


class Scene:
    """A generator of normal images (see the module docstring); subclasses set ``name`` and ``families``."""

    name = "scene"
    families: tuple[str, ...] = FAMILIES[:10]

    def sample(self, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def render(self, params: dict, size: int, *, shape: bool = False, texture: bool = False) -> Layers:
        raise NotImplementedError


# ----------------------------------------------------------------------------- drawing helpers
def draw_mask(size: int, draw) -> np.ndarray:
    """An anti-aliased mask in [0, 1]: ``draw(canvas, scale)`` paints 1s at ``SUPERSAMPLE`` × the size."""
    big = np.zeros((size * SUPERSAMPLE, size * SUPERSAMPLE), np.float32)
    draw(big, SUPERSAMPLE)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def polygon_points(cx: float, cy: float, radius: float, corners: int, angle: float, star: bool = False) -> np.ndarray:
    """Vertices of a regular polygon (or a star with ``corners`` tips) in relative coordinates."""
    count = corners * 2 if star else corners
    points = []
    for k in range(count):
        r = radius * (0.45 if star and k % 2 else 1.0)
        theta = angle + 2 * np.pi * k / count
        points.append((cx + r * np.cos(theta), cy + r * np.sin(theta)))
    return np.array(points)


def fill_polygon(canvas: np.ndarray, points: np.ndarray, scale: int) -> None:
    """Fill a polygon given in relative coordinates (0–1) on a supersampled canvas."""
    side = canvas.shape[0]
    pixels = np.round(points * side * 16).astype(np.int32)
    cv2.fillPoly(canvas, [pixels], 1.0, lineType=cv2.LINE_AA, shift=4)


def fill_ellipse(canvas: np.ndarray, cx: float, cy: float, rx: float, ry: float, angle_deg: float) -> None:
    side = canvas.shape[0]
    centre = (int(round(cx * side * 16)), int(round(cy * side * 16)))
    axes = (max(1, int(round(rx * side * 16))), max(1, int(round(ry * side * 16))))
    cv2.ellipse(canvas, centre, axes, angle_deg, 0, 360, 1.0, -1, lineType=cv2.LINE_AA, shift=4)


def smooth_field(size: int, rng: np.random.Generator, *, power: float = 2.5, amplitude: float = 0.1) -> np.ndarray:
    """Natural-looking 1/f^power noise (clouds, tissue), zero mean, standard deviation ``amplitude``."""
    frequencies = np.fft.fftfreq(size)
    radius = np.sqrt(frequencies[:, None] ** 2 + frequencies[None, :] ** 2)
    radius[0, 0] = 1.0
    spectrum = np.fft.fft2(rng.standard_normal((size, size))) / radius ** (power / 2)
    spectrum[0, 0] = 0
    field = np.real(np.fft.ifft2(spectrum))
    return (field / max(field.std(), 1e-9) * amplitude).astype(np.float32)


def coordinates(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [0, 1]: (ys, xs), each H × W."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size
    return np.meshgrid(axis, axis, indexing="ij")


def stripes(size: int, rng: np.random.Generator, *, period: float, amplitude: float) -> np.ndarray:
    """A sinusoidal stripe pattern at a random angle (relative ``period``)."""
    ys, xs = coordinates(size)
    theta = rng.uniform(0, np.pi)
    return (amplitude * np.sin(2 * np.pi * (xs * np.cos(theta) + ys * np.sin(theta)) / period)).astype(np.float32)


# ----------------------------------------------------------------------------- families
def _disc(size: int, cy: float, cx: float, radius: float) -> np.ndarray:
    return draw_mask(size, lambda canvas, _scale: fill_ellipse(canvas, cx, cy, radius, radius, 0.0))


def _pick_point(weights: np.ndarray, rng: np.random.Generator, margin: float) -> tuple[float, float]:
    """A relative (y, x) drawn where ``weights`` > 0.5 (anywhere when none), ``margin`` away from the border."""
    size = weights.shape[0]
    low, high = int(margin * size), size - int(margin * size)
    inner = np.zeros_like(weights, dtype=bool)
    inner[low:high, low:high] = True
    candidates = np.argwhere((weights > 0.5) & inner)
    if len(candidates) == 0:
        candidates = np.argwhere(inner)
    y, x = candidates[rng.integers(len(candidates))]
    return (y + 0.5) / size, (x + 0.5) / size


def _against(local: float, delta: float) -> float:
    """``delta`` signed so that the change stands out against a surrounding of brightness ``local``."""
    return -delta if local > 0.5 else delta


def _add_local(image: np.ndarray, mask: np.ndarray, delta: float) -> np.ndarray:
    return image + delta * mask[..., None]


def apply_family(
    scene: Scene, family: str, params: dict, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray | None]:
    """One anomalous image (H × W × 3 in [0, 1]) of ``family`` from normal ``params``, and its defect mask."""
    if family == "shape":
        return scene.render(params, size, shape=True).composite(), None
    if family == "texture":
        return scene.render(params, size, texture=True).composite(), None
    layers = scene.render(params, size)
    image = layers.composite()
    grey = image.mean(axis=2)
    mask = None
    if family == "spot":
        cy, cx = _pick_point(layers.alpha, rng, 0.1)
        mask = _disc(size, cy, cx, rng.uniform(0.03, 0.06))
        image = _add_local(image, mask, _against(float(np.average(grey, weights=mask + 1e-9)), 0.35))
    elif family == "scratch":
        cy, cx = _pick_point(layers.alpha, rng, 0.15)
        length, angle = rng.uniform(0.25, 0.45), rng.uniform(0, np.pi)
        dy, dx = np.sin(angle) * length / 2, np.cos(angle) * length / 2
        width = rng.uniform(0.01, 0.02)

        def line(canvas, scale):
            side = canvas.shape[0]
            start = (int((cx - dx) * side * 16), int((cy - dy) * side * 16))
            end = (int((cx + dx) * side * 16), int((cy + dy) * side * 16))
            thickness = max(scale, int(round(width * side)))
            cv2.line(canvas, start, end, 1.0, thickness, lineType=cv2.LINE_AA, shift=4)

        mask = draw_mask(size, line)
        image = _add_local(image, mask, _against(float(np.average(grey, weights=mask + 1e-9)), 0.3))
    elif family == "missing_part":
        # Centred on the object's outline, so a bite is taken and some of the object is always left around it.
        cy, cx = _pick_point(4 * layers.alpha * (1 - layers.alpha), rng, 0.15)
        cut = _disc(size, cy, cx, rng.uniform(0.08, 0.12))
        alpha = layers.alpha * (1 - cut)
        image = Layers(layers.background, layers.foreground, alpha).composite()
        mask = np.clip(layers.alpha - alpha, 0, 1)
    elif family == "lesion":
        body = (cv2.GaussianBlur(grey, (0, 0), max(1.0, size / 32)) >= 0.2).astype(np.float32)
        cy, cx = _pick_point(body, rng, 0.15)
        radius = rng.uniform(0.04, 0.07)
        ys, xs = coordinates(size)
        distance = np.sqrt((ys - cy) ** 2 + (xs - cx) ** 2) / radius
        profile = np.clip(1 - distance**2, 0, 1) ** 0.5
        mask = (distance < 1).astype(np.float32)
        sign = rng.choice([-1.0, 1.0])
        image = _add_local(image, profile.astype(np.float32), sign * rng.uniform(0.2, 0.3))
    elif family == "intensity":
        image = image + rng.choice([-1.0, 1.0]) * rng.uniform(0.18, 0.28)
    elif family == "contrast":
        factor = rng.uniform(0.35, 0.5) if rng.random() < 0.5 else rng.uniform(1.7, 2.2)
        mean = image.mean(axis=(0, 1), keepdims=True)
        image = mean + (image - mean) * factor
    elif family == "noise":
        image = image + rng.normal(0, rng.uniform(0.07, 0.1), image.shape[:2])[..., None]
    elif family == "rotation":
        image = np.rot90(image, k=int(rng.choice([1, 3])), axes=(0, 1))
    elif family == "crop":
        side = int(round(rng.uniform(0.5, 0.65) * size))
        y0, x0 = rng.integers(0, size - side + 1, 2)
        image = cv2.resize(np.ascontiguousarray(image[y0 : y0 + side, x0 : x0 + side]), (size, size))
    else:
        raise ValueError(f"Unknown anomaly family {family!r}; use one of {', '.join(FAMILIES)}.")
    return image, (None if mask is None else (mask > 0.5))


def finish(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sensor noise and clipping: what every image, normal or not, goes through last."""
    noisy = image + rng.normal(0, SENSOR_NOISE, image.shape[:2])[..., None]
    return np.clip(noisy, 0, 1).astype(np.float32)


def to_image(array: np.ndarray, *, grey: bool) -> Image.Image:
    """An 8-bit PIL image: ``L`` (luminance) when ``grey``, else ``RGB``."""
    if grey:
        luminance = array @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return Image.fromarray(np.round(luminance * 255).astype(np.uint8), mode="L")
    return Image.fromarray(np.round(array * 255).astype(np.uint8), mode="RGB")


def make_normals(scene: Scene, n: int, size: int, rng: np.random.Generator, *, grey: bool) -> list[Image.Image]:
    return [to_image(finish(scene.render(scene.sample(rng), size).composite(), rng), grey=grey) for _ in range(n)]


def make_images(
    scene: Scene, family: str, n: int, size: int, rng: np.random.Generator, *, grey: bool
) -> tuple[list[Image.Image], list[np.ndarray | None]]:
    """``n`` anomalous images of ``family`` and their defect masks (None for families without one)."""
    if family not in scene.families:
        raise ValueError(f"The {scene.name} scene has no {family!r} family.")
    images, masks = [], []
    for _ in range(n):
        array, mask = apply_family(scene, family, scene.sample(rng), size, rng)
        images.append(to_image(finish(array, rng), grey=grey))
        masks.append(mask)
    return images, masks
