"""Image classifier training with a scikit-learn-like surface.

::

    trainer = ImageClassifierTrainer("resnet18", level=3, image_size=64, progress=print, should_stop=lambda: False)
    trainer.fit(train_dataset, val_dataset)      # datasets yield (PIL image or tensor, class index)
    trainer.predict_proba([pil_image, "x.png"])   # → (n, classes) array
    trainer.predict([...])                        # → class names
    trainer.save("model.pt"); ImageClassifierTrainer.load("model.pt")

``augment`` (training images only) is a PIL → PIL callable or an ``augmentation.PRESETS`` name.
Datasets yield ``(PIL image, index)`` (``datasets.ImageRecordsDataset``/``PilListDataset``) — the
trainer applies its own resize + normalisation, so what is served is what was validated — or
``(tensor, index)`` already preprocessed. Class names come from ``class_names=`` or the dataset's
``class_names`` attribute.

Training: ``LEVELS`` gives (epochs, batch size, learning rate); explicit ``epochs``/``batch_size``/
``learning_rate`` override the level. AdamW; linear warm-up (first 10 % of steps) then cosine decay
per batch; gradient clipping (norm ``grad_clip``); early stopping when the validation loss has not
improved for ``patience`` epochs; the best-validation-loss weights are kept and restored at the end
(also when stopped). Mixed precision only on CUDA. Seeded (torch, NumPy, random, loader shuffling;
cuDNN deterministic).

``progress(TrainingProgress)`` is called after every batch and every epoch, with the overall fraction
and an ETA. ``should_stop()`` is checked before every batch; stopping ends training at once and keeps
the best checkpoint so far (or, before any epoch finished, the weights as they are, validated).

After ``fit``: ``model_``, ``info_`` (``architectures.ModelInfo``), ``class_names_``, ``history_``
(per-epoch train/val loss and accuracy: the learning curves), ``best_epoch_``, ``metrics_`` (see
``metrics.classification_metrics``, for the restored weights), ``stopped_`` (user stop),
``stopped_early_`` (early stopping), ``train_images_per_second_``.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from .architectures import DEFAULT_ARCHITECTURE, ModelInfo, build_model
from .images import decode_image
from .metrics import classification_metrics

BUNDLE_FORMAT = "deepmed-image-classifier"
BUNDLE_VERSION = 1


@dataclass(frozen=True)
class TrainingLevel:
    """A documented preset of epochs, batch size and learning rate."""

    epochs: int
    batch_size: int
    learning_rate: float


LEVELS: dict[int, TrainingLevel] = {
    1: TrainingLevel(1, 32, 0.01),
    2: TrainingLevel(2, 24, 0.005),
    3: TrainingLevel(3, 16, 0.001),
    4: TrainingLevel(5, 16, 0.0005),
    5: TrainingLevel(8, 8, 0.0001),
}


@dataclass
class TrainingProgress:
    """One progress report: ``stage`` is ``batch`` or ``epoch``; ``fraction`` is overall 0..1."""

    stage: str
    epoch: int
    epochs: int
    batch: int
    batches: int
    fraction: float
    eta_seconds: float | None
    loss: float | None
    message: str
    epoch_metrics: dict | None = None


@dataclass
class _Checkpoint:
    epoch: int
    val_loss: float
    state_dict: dict
    metrics: dict = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def eval_transform(image_size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    return transforms.Compose(
        [
            transforms.Resize((image_size, image_size)),
            transforms.ToTensor(),
            transforms.Normalize(list(mean), list(std)),
        ]
    )


class _Transformed(Dataset):
    """Applies the trainer's preprocessing to PIL samples; tensors pass through."""

    def __init__(self, base: Dataset, transform: Callable, augment: Callable | None = None):
        self.base, self.transform, self.augment = base, transform, augment

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        image, label = self.base[index]
        if isinstance(image, torch.Tensor):
            return image, int(label)
        image = image.convert("RGB")
        if self.augment is not None:
            image = self.augment(image)
        return self.transform(image), int(label)


def _cosine_with_warmup(total_steps: int, warmup_fraction: float, floor: float = 0.02) -> Callable[[int], float]:
    warmup = int(total_steps * warmup_fraction)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


class ImageClassifierTrainer:
    """Fine-tunes one of ``architectures.ARCHITECTURES``; see the module docstring."""

    def __init__(
        self,
        architecture: str = DEFAULT_ARCHITECTURE,
        *,
        level: int = 3,
        image_size: int = 224,
        epochs: int | None = None,
        batch_size: int | None = None,
        learning_rate: float | None = None,
        weight_decay: float = 1e-4,
        warmup_fraction: float = 0.1,
        grad_clip: float = 1.0,
        patience: int = 2,
        min_delta: float = 0.0,
        seed: int = 0,
        pretrained: bool = True,
        pretrained_dir: str | os.PathLike | None = None,
        augment: str | Callable[[Image.Image], Image.Image] | None = None,
        device: str | None = None,
        num_workers: int = 0,
        progress: Callable[[TrainingProgress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        if level not in LEVELS:
            raise ValueError(f"Training level must be one of {sorted(LEVELS)}.")
        preset = LEVELS[level]
        self.architecture = architecture
        self.level = level
        self.image_size = int(image_size)
        self.epochs = int(epochs or preset.epochs)
        self.batch_size = int(batch_size or preset.batch_size)
        self.learning_rate = float(learning_rate or preset.learning_rate)
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.grad_clip = grad_clip
        self.patience = patience
        self.min_delta = min_delta
        self.seed = seed
        self.pretrained = pretrained
        self.pretrained_dir = pretrained_dir
        self.augment = augment
        self.device = device
        self.num_workers = num_workers
        self.progress = progress
        self.should_stop = should_stop

    # ----------------------------------------------------------------- configuration
    def config(self) -> dict:
        return {
            "architecture": self.architecture,
            "level": self.level,
            "image_size": self.image_size,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "warmup_fraction": self.warmup_fraction,
            "grad_clip": self.grad_clip,
            "patience": self.patience,
            "seed": self.seed,
            "augment": self.augment if isinstance(self.augment, str) else None,
        }

    def _device(self) -> torch.device:
        if self.device:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _report(self, **kwargs) -> None:
        if self.progress is not None:
            self.progress(TrainingProgress(**kwargs))

    def _stop_requested(self) -> bool:
        return bool(self.should_stop and self.should_stop())

    # ----------------------------------------------------------------- training
    def fit(self, train_dataset: Dataset, val_dataset: Dataset, *, class_names: Sequence[str] | None = None):
        names = list(class_names or getattr(train_dataset, "class_names", None) or [])
        if not names:
            raise ValueError("Class names are needed: pass class_names= or use a dataset with class_names.")
        if len(train_dataset) == 0 or len(val_dataset) == 0:
            raise ValueError("Training needs at least one training and one validation image.")
        seed_everything(self.seed)
        device = self._device()
        model, info = build_model(
            self.architecture, len(names), pretrained=self.pretrained, pretrained_dir=self.pretrained_dir
        )
        model.to(device)
        self.model_, self.info_, self.class_names_ = model, info, names
        self.transform_ = eval_transform(self.image_size, info.mean, info.std)

        generator = torch.Generator().manual_seed(self.seed)
        # A last batch of one sample breaks BatchNorm in training mode.
        drop_last = len(train_dataset) % self.batch_size == 1 and len(train_dataset) > self.batch_size
        train_loader = DataLoader(
            _Transformed(train_dataset, self.transform_, self._augmenter()),
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=self.num_workers,
            drop_last=drop_last,
            pin_memory=device.type == "cuda",
        )
        val_loader = DataLoader(
            _Transformed(val_dataset, self.transform_),
            batch_size=self.batch_size * 2,
            shuffle=False,
            num_workers=self.num_workers,
        )
        batches = len(train_loader)
        total_steps = max(1, self.epochs * batches)
        optimizer = torch.optim.AdamW(model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _cosine_with_warmup(total_steps, self.warmup_fraction))
        use_amp = device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
        criterion = nn.CrossEntropyLoss()

        self.history_: list[dict] = []
        self.stopped_ = False
        self.stopped_early_ = False
        best: _Checkpoint | None = None
        epochs_without_improvement = 0
        step = 0
        images_seen = 0
        train_seconds = 0.0
        started = time.perf_counter()

        for epoch in range(1, self.epochs + 1):
            model.train()
            epoch_loss, epoch_correct, epoch_count = 0.0, 0, 0
            epoch_started = time.perf_counter()
            for batch_index, (inputs, targets) in enumerate(train_loader, start=1):
                if self._stop_requested():
                    self.stopped_ = True
                    break
                inputs = inputs.to(device, non_blocking=True)
                targets = targets.to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                    logits = model(inputs)
                    loss = criterion(logits, targets)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), self.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                step += 1
                size = targets.shape[0]
                epoch_loss += float(loss.detach()) * size
                epoch_correct += int((logits.detach().argmax(1) == targets).sum())
                epoch_count += size
                elapsed = time.perf_counter() - started
                self._report(
                    stage="batch",
                    epoch=epoch,
                    epochs=self.epochs,
                    batch=batch_index,
                    batches=batches,
                    fraction=step / total_steps,
                    eta_seconds=elapsed / step * (total_steps - step),
                    loss=float(loss.detach()),
                    message=f"Epoch {epoch}/{self.epochs}, batch {batch_index}/{batches}",
                )
            train_seconds += time.perf_counter() - epoch_started
            images_seen += epoch_count
            if self.stopped_ and best is not None:
                break  # keep the best complete epoch; a partial one is not validated
            val_loss, y_true, proba = self._validate(model, val_loader, device)
            metrics = classification_metrics(y_true, proba, names)
            record = {
                "epoch": epoch,
                "train_loss": epoch_loss / epoch_count if epoch_count else None,
                "train_accuracy": epoch_correct / epoch_count if epoch_count else None,
                "val_loss": val_loss,
                "val_accuracy": metrics["accuracy"],
                "complete": not self.stopped_,
            }
            self.history_.append(record)
            if best is None or val_loss < best.val_loss - self.min_delta:
                best = _Checkpoint(epoch, val_loss, _copy_state(model), metrics)
                epochs_without_improvement = 0
            else:
                epochs_without_improvement += 1
            elapsed = time.perf_counter() - started
            self._report(
                stage="epoch",
                epoch=epoch,
                epochs=self.epochs,
                batch=batches,
                batches=batches,
                fraction=step / total_steps,
                eta_seconds=elapsed / max(step, 1) * (total_steps - step),
                loss=record["train_loss"],
                message=f"Epoch {epoch}/{self.epochs}: validation loss {val_loss:.4f}, "
                f"accuracy {metrics['accuracy']:.3f}",
                epoch_metrics=record,
            )
            if self.stopped_:
                break
            if epochs_without_improvement >= self.patience and epoch < self.epochs:
                self.stopped_early_ = True
                break

        assert best is not None  # at least one validation ran
        model.load_state_dict(best.state_dict)
        model.eval()
        self.best_epoch_ = best.epoch
        self.best_val_loss_ = best.val_loss
        self.metrics_ = best.metrics
        self.train_seconds_ = train_seconds
        self.train_images_per_second_ = images_seen / train_seconds if train_seconds > 0 else 0.0
        return self

    def _augmenter(self) -> Callable[[Image.Image], Image.Image] | None:
        """Training-time augmentation: a callable, or the name of an ``augmentation`` preset."""
        if not isinstance(self.augment, str):
            return self.augment
        from .augmentation import augment_image, build_pipeline

        pipeline = build_pipeline(self.augment, seed=self.seed)
        return lambda image: augment_image(image, pipeline)

    def _validate(self, model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, list, np.ndarray]:
        """Mean validation loss, true labels and predicted probabilities."""
        model.eval()
        criterion = nn.CrossEntropyLoss(reduction="sum")
        total, count, labels, probabilities = 0.0, 0, [], []
        with torch.no_grad():
            for inputs, targets in loader:
                inputs, targets = inputs.to(device), targets.to(device)
                logits = model(inputs).float()
                total += float(criterion(logits, targets))
                count += targets.shape[0]
                labels.extend(targets.cpu().tolist())
                probabilities.append(torch.softmax(logits, dim=1).cpu().numpy())
        proba = np.concatenate(probabilities) if probabilities else np.zeros((0, len(self.class_names_)))
        return total / max(count, 1), labels, proba

    # ----------------------------------------------------------------- prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("The classifier is not trained yet: call fit() or load().")

    def preprocess(self, image) -> torch.Tensor:
        """One image (PIL, path, bytes or a preprocessed C×H×W tensor) → 1×C×H×W tensor."""
        self._check_fitted()
        if isinstance(image, torch.Tensor):
            return image.unsqueeze(0) if image.dim() == 3 else image
        if not isinstance(image, Image.Image):
            image = decode_image(image).image
        return self.transform_(image.convert("RGB")).unsqueeze(0)

    def predict_proba(self, images: Sequence, *, batch_size: int | None = None) -> np.ndarray:
        self._check_fitted()
        if isinstance(images, torch.Tensor) and images.dim() == 4:
            images = list(images)
        device = next(self.model_.parameters()).device
        # On this project's CPUs a forward pass of 64 images runs at a third of the per-image speed of
        # chunks of 4–8 (cache-bound; benchmarks/imaging_predict.py); GPUs prefer large batches.
        size = batch_size or (64 if device.type == "cuda" else 8)
        outputs = []
        self.model_.eval()
        with torch.no_grad():
            for start in range(0, len(images), size):
                batch = torch.cat([self.preprocess(image) for image in images[start : start + size]]).to(device)
                outputs.append(torch.softmax(self.model_(batch).float(), dim=1).cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.class_names_)))

    def predict(self, images: Sequence, *, batch_size: int | None = None) -> np.ndarray:
        proba = self.predict_proba(images, batch_size=batch_size)
        return np.array(self.class_names_, dtype=object)[proba.argmax(axis=1)]

    # ----------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """One file: weights, class names, architecture, image size, normalisation, metrics, curves."""
        self._check_fitted()
        path = Path(path)
        bundle = {
            "format": BUNDLE_FORMAT,
            "version": BUNDLE_VERSION,
            "architecture": self.architecture,
            "class_names": list(self.class_names_),
            "image_size": self.image_size,
            "normalisation": {"mean": list(self.info_.mean), "std": list(self.info_.std)},
            "weights_origin": self.info_.weights,
            "config": self.config(),
            "metrics": getattr(self, "metrics_", {}),
            "history": getattr(self, "history_", []),
            "best_epoch": getattr(self, "best_epoch_", None),
            "state_dict": {k: v.detach().cpu() for k, v in self.model_.state_dict().items()},
        }
        torch.save(bundle, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, *, device: str | None = None) -> ImageClassifierTrainer:
        """Rebuild a saved classifier; ``weights_only`` loading, so the file cannot run code."""
        bundle = torch.load(Path(path), map_location="cpu", weights_only=True)
        if bundle.get("format") != BUNDLE_FORMAT:
            raise ValueError("This file is not a DeepMed image classifier.")
        config = dict(bundle["config"])
        trainer = cls(
            bundle["architecture"],
            level=config.get("level", 3),
            image_size=bundle["image_size"],
            epochs=config.get("epochs"),
            batch_size=config.get("batch_size"),
            learning_rate=config.get("learning_rate"),
            seed=config.get("seed", 0),
            pretrained=False,
            device=device,
        )
        names = list(bundle["class_names"])
        model, info = build_model(bundle["architecture"], len(names), pretrained=False)
        model.load_state_dict(bundle["state_dict"])
        model.to(trainer._device()).eval()
        mean = tuple(bundle["normalisation"]["mean"])
        std = tuple(bundle["normalisation"]["std"])
        trainer.model_ = model
        trainer.info_ = ModelInfo(**{**asdict(info), "weights": bundle["weights_origin"], "mean": mean, "std": std})
        trainer.class_names_ = names
        trainer.transform_ = eval_transform(trainer.image_size, mean, std)
        trainer.metrics_ = bundle["metrics"]
        trainer.history_ = bundle["history"]
        trainer.best_epoch_ = bundle["best_epoch"]
        return trainer


def _copy_state(model: nn.Module) -> dict:
    return {key: value.detach().to("cpu", copy=True) for key, value in copy.copy(model.state_dict()).items()}
