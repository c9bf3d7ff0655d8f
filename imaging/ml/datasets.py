"""Index a collection of class folders and serve it to PyTorch.

Layout understood (``relative_name`` = path inside the upload, ``/``-separated)::

    <class>/<file>                 no split given → ``DatasetIndex.split()`` makes one
    train/<class>/<file>, val/<class>/<file>   (also ``validation/``) → the split is kept

A single wrapper folder around all of it (``my_data/cats/1.png``) is stripped.

``index_images(items, *, patient_salt=None, min_classes=2, min_per_class=5) -> DatasetIndex``
    ``items`` is a sequence of ``(path_on_disk, relative_name)`` pairs or the ``ExtractedFile`` list
    ``archive.extract_images`` returns (server names on disk, the archive's names as metadata). Every file is decoded
    (``images.decode_image``); failures land in ``skipped`` with a reason, exact duplicates (SHA-256
    of the content) in ``duplicates`` (the first copy is kept, the others skipped so the same image
    cannot sit on both sides of a split). DICOM PatientIDs become ``patient_key`` (salted hash;
    a random salt when none is given). Raises ``DatasetError`` (codes ``no_images``,
    ``too_few_classes``, ``too_few_images``) when the collection cannot be trained on.
``index_image_folder(root, **kwargs)``: the same for a folder on disk.

``DatasetIndex.split(val_fraction=0.2, seed=0) -> (train_records, val_records)``
    The provided split when there is one; otherwise stratified by class, and grouped by patient
    (every image of a patient on one side) whenever DICOM patient keys exist.
``DatasetIndex.patient_leakage``: for a provided split, the patients that appear in both.

``ImageRecordsDataset(records, class_names, transform=None)``: a torch ``Dataset`` yielding
``(transform(PIL RGB image), class_index)``; without a transform it yields the PIL image.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from .errors import DatasetError, ImageDecodeError
from .images import decode_image

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val"}


@dataclass
class ImageRecord:
    """One usable image: where it is, its class, its side of a provided split and its patient."""

    path: Path
    relative_name: str
    label: str
    split: str | None
    sha256: str
    kind: str
    patient_key: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class SkippedFile:
    """A file left out, and why in plain words."""

    relative_name: str
    reason: str
    code: str


@dataclass
class DatasetIndex:
    """The checked collection: usable records, what was skipped, duplicates and split facts."""

    records: list[ImageRecord]
    classes: list[str]
    skipped: list[SkippedFile]
    duplicates: list[list[str]]
    has_provided_split: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def class_counts(self) -> dict[str, int]:
        counts = Counter(record.label for record in self.records)
        return {name: counts.get(name, 0) for name in self.classes}

    @property
    def split_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for side in ("train", "val"):
            counts = Counter(r.label for r in self.records if r.split == side)
            out[side] = {name: counts.get(name, 0) for name in self.classes}
        return out

    @property
    def has_patient_keys(self) -> bool:
        return any(record.patient_key for record in self.records)

    @property
    def patient_leakage(self) -> list[dict]:
        """Patients with images on both sides of a provided split (empty when there is none)."""
        if not self.has_provided_split:
            return []
        sides: dict[str, dict[str, list[str]]] = defaultdict(lambda: {"train": [], "val": []})
        for record in self.records:
            if record.patient_key and record.split in ("train", "val"):
                sides[record.patient_key][record.split].append(record.relative_name)
        return [
            {"patient_key": key, "train_files": value["train"], "val_files": value["val"]}
            for key, value in sorted(sides.items())
            if value["train"] and value["val"]
        ]

    def split(self, *, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[ImageRecord], list[ImageRecord]]:
        if self.has_provided_split:
            return [r for r in self.records if r.split == "train"], [r for r in self.records if r.split == "val"]
        return split_records(self.records, val_fraction=val_fraction, seed=seed)

    def report(self) -> dict:
        """JSON-ready summary for the upload page."""
        return {
            "classes": self.classes,
            "class_counts": self.class_counts,
            "image_count": len(self.records),
            "has_provided_split": self.has_provided_split,
            "split_counts": self.split_counts if self.has_provided_split else None,
            "skipped": [vars(item) for item in self.skipped],
            "duplicates": self.duplicates,
            "patient_keys": self.has_patient_keys,
            "patient_leakage": self.patient_leakage,
            "warnings": self.warnings,
        }


def _strip_wrapper(names: list[tuple[str, ...]]) -> int:
    """How many leading folders every path shares and that are not part of the layout."""
    depth = 0
    while True:
        if not names or any(len(parts) < depth + 3 for parts in names):
            return depth
        first = {parts[depth] for parts in names}
        if len(first) != 1 or next(iter(first)).lower() in SPLIT_NAMES:
            return depth
        depth += 1


def index_images(
    items: Iterable[tuple[str | os.PathLike, str]],
    *,
    patient_salt: str | None = None,
    min_classes: int = 2,
    min_per_class: int = 5,
) -> DatasetIndex:
    """Decode, check and index ``(path, relative_name)`` pairs; raise ``DatasetError`` if unusable."""
    # Without a salt from the caller a random one still groups a patient's files within this index,
    # which is all splitting needs; a stable salt (a setting) makes keys comparable across uploads.
    patient_salt = patient_salt or secrets.token_hex(16)
    # ``archive.ExtractedFile`` objects are accepted as they are.
    items = [(item.path, item.original_name) if hasattr(item, "original_name") else item for item in items]
    items = [(Path(path), str(name).replace("\\", "/").strip("/")) for path, name in items]
    parts_list = [tuple(p for p in name.split("/") if p) for _, name in items]
    depth = _strip_wrapper(parts_list)
    records: list[ImageRecord] = []
    skipped: list[SkippedFile] = []
    by_hash: dict[str, list[ImageRecord | str]] = {}
    provided_split = any(len(parts) > depth + 2 and parts[depth].lower() in SPLIT_NAMES for parts in parts_list)
    for (path, name), parts in zip(items, parts_list, strict=True):
        parts = parts[depth:]
        split = None
        if provided_split:
            if len(parts) < 3 or parts[0].lower() not in SPLIT_NAMES:
                skipped.append(SkippedFile(name, "Outside the train/ and val/ folders.", "outside_split"))
                continue
            split, parts = SPLIT_NAMES[parts[0].lower()], parts[1:]
        if len(parts) < 2:
            skipped.append(SkippedFile(name, "Not inside a class folder.", "no_class_folder"))
            continue
        label = parts[0]
        try:
            data = path.read_bytes()
            decoded = decode_image(data, patient_salt=patient_salt)
        except ImageDecodeError as exc:
            skipped.append(SkippedFile(name, exc.message, exc.code))
            continue
        except OSError:
            skipped.append(SkippedFile(name, "The file could not be read.", "unreadable"))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in by_hash:
            by_hash[digest].append(name)
            skipped.append(SkippedFile(name, f"Exact duplicate of {by_hash[digest][0].relative_name}.", "duplicate"))
            continue
        record = ImageRecord(
            path=path,
            relative_name=name,
            label=label,
            split=split,
            sha256=digest,
            kind=decoded.kind,
            patient_key=decoded.patient_key,
            notes=decoded.notes,
        )
        by_hash[digest] = [record]
        records.append(record)
    duplicates = [[group[0].relative_name, *group[1:]] for group in by_hash.values() if len(group) > 1]
    classes = sorted({record.label for record in records})
    index = DatasetIndex(
        records=records, classes=classes, skipped=skipped, duplicates=duplicates, has_provided_split=provided_split
    )
    _check(index, min_classes=min_classes, min_per_class=min_per_class)
    return index


def _check(index: DatasetIndex, *, min_classes: int, min_per_class: int) -> None:
    if not index.records:
        raise DatasetError(
            "No usable images were found. Put PNG, JPEG, TIFF, BMP or DICOM files in one folder per class.",
            "no_images",
        )
    if len(index.classes) < min_classes:
        found = ", ".join(index.classes)
        raise DatasetError(
            f"Found {len(index.classes)} class ({found}); at least {min_classes} class folders are needed.",
            "too_few_classes",
        )
    small = {name: count for name, count in index.class_counts.items() if count < min_per_class}
    if small:
        listing = ", ".join(f"{name} ({count})" for name, count in small.items())
        raise DatasetError(
            f"Each class needs at least {min_per_class} usable images; too few in: {listing}.", "too_few_images"
        )
    if index.has_provided_split:
        for side, counts in index.split_counts.items():
            missing = [name for name, count in counts.items() if count == 0]
            if missing:
                index.warnings.append(f"No {side} images for: {', '.join(missing)}.")
    if index.patient_leakage:
        index.warnings.append(
            f"{len(index.patient_leakage)} patient(s) have images in both train and val; "
            "validation figures will be optimistic."
        )


def index_image_folder(root: str | os.PathLike, **kwargs) -> DatasetIndex:
    """``index_images`` over every regular file under ``root`` (hidden files and links ignored)."""
    root = Path(root)
    items = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file() or path.name.startswith("."):
            continue
        items.append((path, path.relative_to(root).as_posix()))
    return index_images(items, **kwargs)


def split_records(
    records: Sequence[ImageRecord], *, val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Stratified split; grouped by patient when patient keys exist (each patient on one side)."""
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    if not 0 < val_fraction < 1:
        raise DatasetError("The validation fraction must be between 0 and 1.", "bad_val_fraction")
    labels = np.array([r.label for r in records])
    positions = np.arange(len(records))
    if any(r.patient_key for r in records):
        # Images without a patient key are their own group.
        groups = np.array([r.patient_key or f"__file_{i}" for i, r in enumerate(records)])
        n_splits = max(2, round(1 / val_fraction))
        n_splits = min(n_splits, len(set(groups)))
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        train_pos, val_pos = next(folds.split(positions, labels, groups))
    else:
        n_classes = len(set(labels))
        val_count = max(n_classes, round(len(records) * val_fraction))
        train_pos, val_pos = train_test_split(positions, test_size=val_count, stratify=labels, random_state=seed)
    return [records[i] for i in sorted(train_pos)], [records[i] for i in sorted(val_pos)]


class ImageRecordsDataset(Dataset):
    """Torch dataset over records: ``(transform(RGB PIL image), class index)``."""

    def __init__(self, records: Sequence[ImageRecord], class_names: Sequence[str], transform: Callable | None = None):
        self.records = list(records)
        self.class_names = list(class_names)
        self.transform = transform
        self._class_index = {name: i for i, name in enumerate(self.class_names)}

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int):
        record = self.records[index]
        image = decode_image(record.path).image.convert("RGB")
        label = self._class_index[record.label]
        return (self.transform(image) if self.transform else image), label

    @property
    def targets(self) -> list[int]:
        return [self._class_index[r.label] for r in self.records]


class PilListDataset(Dataset):
    """In-memory ``(PIL image, class index)`` pairs — for tests, notebooks and benchmarks."""

    def __init__(self, images: Sequence, labels: Sequence[int], class_names: Sequence[str]):
        self.images = list(images)
        self.labels = [int(label) for label in labels]
        self.class_names = list(class_names)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index].convert("RGB"), self.labels[index]

    @property
    def targets(self) -> list[int]:
        return self.labels
