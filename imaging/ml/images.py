"""Decode-and-verify of image files.

``check_image_size(data, *, max_pixels=..., max_frames=...) -> None``
    Refuses, from the header alone and before any pixel is decoded, an image over ``max_pixels``
    (``too_many_pixels``) or a DICOM file of more than ``max_frames`` frames (``too_many_frames``). Files that
    are not images are left to ``decode_image`` to refuse.

``decode_image(source, *, patient_salt=None, max_pixels=..., max_frames=...) -> DecodedImage``
    ``source`` is a path, bytes or a binary file. The type is taken from the content (magic
    bytes), never the extension: PNG, JPEG, TIFF, BMP, or DICOM (``DICM`` at byte 128). Raster
    files are checked with Pillow ``verify()`` and then fully ``load()``-ed, so truncated files
    are refused (``truncated``) rather than half-read. DICOM goes through ``imaging.ml.dicom``
    (modality rescale, VOI LUT/windowing, MONOCHROME1 inversion, 8-bit). The result's ``image``
    is a PIL image in mode ``L`` or ``RGB``; ``notes`` say what was done (first frame of many,
    16-bit scaled down...). Failure raises ``ImageDecodeError(message, code)``.

``save_png(image, path)`` writes the decoded pixels as PNG (no metadata: nothing identifying).
``sha256_file(path)`` hashes content for duplicate detection.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageDecodeError

DEFAULT_MAX_PIXELS = 64_000_000
# Only a DICOM's first frame is decoded; the cap keeps what a header may declare within reason.
DEFAULT_MAX_FRAMES = 1000
RASTER_KINDS = {"PNG": "png", "JPEG": "jpeg", "TIFF": "tiff", "BMP": "bmp"}


@dataclass
class DecodedImage:
    """Pixels ready for training (mode ``L`` or ``RGB``) plus what decoding found out."""

    image: Image.Image
    kind: str
    notes: list[str] = field(default_factory=list)
    patient_key: str | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def sniff_kind(head: bytes) -> str | None:
    """Image kind from the first 132 bytes, or None when it is none we accept."""
    # DICOM first: a DICOM preamble may itself be a TIFF header (dual-personality files).
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"BM"):
        return "bmp"
    return None


def _read_bytes(source: str | os.PathLike | bytes | BinaryIO) -> bytes:
    if isinstance(source, bytes | bytearray):
        return bytes(source)
    if hasattr(source, "read"):
        if hasattr(source, "seek"):
            source.seek(0)
        return source.read()
    return Path(source).read_bytes()


def _too_many_pixels(width: int, height: int, max_pixels: int) -> ImageDecodeError:
    return ImageDecodeError(
        f"The image is too large ({width}×{height} pixels); the limit is {max_pixels:,} pixels.", "too_many_pixels"
    )


def check_image_size(
    data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_frames: int = DEFAULT_MAX_FRAMES
) -> None:
    """Refuse an oversized image from its header (DICOM: read up to the pixel data; raster: Pillow's header)."""
    kind = sniff_kind(data[:132])
    if kind == "dicom":
        from .dicom import check_dicom_size, read_dicom_header

        check_dicom_size(read_dicom_header(data), max_pixels=max_pixels, max_frames=max_frames)
    elif kind is not None:
        try:
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
            return  # a damaged file is refused by decode_image with its own message
        if width * height > max_pixels:
            raise _too_many_pixels(width, height, max_pixels)


def decode_image(
    source: str | os.PathLike | bytes | BinaryIO,
    *,
    patient_salt: str | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_frames: int = DEFAULT_MAX_FRAMES,
) -> DecodedImage:
    """Decode ``source`` fully; raise ``ImageDecodeError`` for anything that is not a sound image."""
    try:
        data = _read_bytes(source)
    except OSError as exc:
        raise ImageDecodeError("The file could not be read.", "unreadable") from exc
    kind = sniff_kind(data[:132])
    if kind is None:
        raise ImageDecodeError("Not an accepted image: use PNG, JPEG, TIFF, BMP or DICOM (.dcm).", "not_an_image")
    if kind == "dicom":
        from .dicom import decode_dicom_bytes

        return decode_dicom_bytes(data, patient_salt=patient_salt, max_pixels=max_pixels, max_frames=max_frames)
    return _decode_raster(data, kind, max_pixels=max_pixels)


def _decode_raster(data: bytes, kind: str, *, max_pixels: int) -> DecodedImage:
    notes: list[str] = []
    try:
        with Image.open(io.BytesIO(data)) as probe:
            width, height = probe.size
            if width * height > max_pixels:
                raise _too_many_pixels(width, height, max_pixels)
            probe.verify()
        # verify() leaves the image unusable and does not decode pixel data; load() does, and
        # fails on truncated files because Pillow's LOAD_TRUNCATED_IMAGES stays False.
        image = Image.open(io.BytesIO(data))
        frames = getattr(image, "n_frames", 1)
        if frames > 1:
            notes.append(f"The file holds {frames} frames; the first one is used.")
            image.seek(0)
        image.load()
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        message = str(exc).lower()
        code = "truncated" if "truncated" in message or "broken" in message else "corrupt"
        raise ImageDecodeError("The image is damaged or incomplete and cannot be decoded.", code) from exc
    return DecodedImage(image=_to_display_mode(image, notes), kind=kind, notes=notes)


def _to_display_mode(image: Image.Image, notes: list[str]) -> Image.Image:
    """Bring any Pillow mode to 8-bit ``L`` or ``RGB``."""
    if image.mode in ("L", "RGB"):
        return image.copy()
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        notes.append(f"{image.mode} pixels were scaled to 8 bits from their own range.")
        return Image.fromarray(to_uint8(values), mode="L")
    if image.mode in ("1", "LA"):
        return image.convert("L")
    return image.convert("RGB")


def to_uint8(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """Linear map of ``[low, high]`` (default: the array's own range) to 0..255, clipped."""
    values = np.asarray(values, dtype=np.float64)
    low = float(np.min(values)) if low is None else low
    high = float(np.max(values)) if high is None else high
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    scaled = (values - low) / (high - low) * 255.0
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def save_png(image: Image.Image, path: str | os.PathLike) -> Path:
    """Write pixels only (no text chunks, no EXIF) as PNG."""
    path = Path(path)
    clean = Image.new(image.mode, image.size)
    clean.paste(image)
    clean.save(path, format="PNG")
    return path


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()
