"""TorchScript export of a trained classifier (ONNX is not installed here).

``export_torchscript(trainer, path) -> Path``: traces the eval-mode model on one
``1×3×image_size×image_size`` input and saves it with ``deepmed.json`` (class names, image size,
normalisation, architecture) as an extra file, so the artefact is usable without this code base.
``load_torchscript(path, device="cpu") -> TorchScriptClassifier`` whose ``predict_proba(images)`` applies
the same preprocessing as ``ImageClassifierTrainer`` and matches the eager model's output.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .images import decode_image
from .training import ImageClassifierTrainer, eval_transform

METADATA_NAME = "deepmed.json"


def export_torchscript(trainer: ImageClassifierTrainer, path: str | os.PathLike) -> Path:
    trainer._check_fitted()
    path = Path(path)
    model = trainer.model_
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    example = torch.zeros(1, 3, trainer.image_size, trainer.image_size, device=device)
    metadata = {
        "architecture": trainer.architecture,
        "class_names": list(trainer.class_names_),
        "image_size": trainer.image_size,
        "normalisation": {"mean": list(trainer.info_.mean), "std": list(trainer.info_.std)},
        "input": "float32 N×3×H×W, RGB scaled to 0..1 then normalised with mean/std",
        "output": "logits; softmax gives class probabilities in class_names order",
    }
    # torch.jit is deprecated in favour of torch.export but is what loads without this code base;
    # the tracer warnings concern input-size-dependent padding, fixed here at ``image_size``.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False).cpu()
        torch.jit.save(traced, str(path), _extra_files={METADATA_NAME: json.dumps(metadata)})
    model.train(was_training)
    return path


class TorchScriptClassifier:
    """A loaded TorchScript export with the preprocessing recorded in it."""

    def __init__(self, module: torch.jit.ScriptModule, metadata: dict, device: str = "cpu"):
        self.module = module.eval()
        self.metadata = metadata
        self.class_names = list(metadata["class_names"])
        self.image_size = int(metadata["image_size"])
        self.device = torch.device(device)
        norm = metadata["normalisation"]
        self.transform = eval_transform(self.image_size, norm["mean"], norm["std"])

    def predict_proba(self, images: Sequence, *, batch_size: int = 32) -> np.ndarray:
        outputs = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                tensors = []
                for image in images[start : start + batch_size]:
                    if isinstance(image, torch.Tensor):
                        tensors.append(image.unsqueeze(0) if image.dim() == 3 else image)
                        continue
                    if not isinstance(image, Image.Image):
                        image = decode_image(image).image
                    tensors.append(self.transform(image.convert("RGB")).unsqueeze(0))
                logits = self.module(torch.cat(tensors).to(self.device))
                outputs.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
        return np.concatenate(outputs) if outputs else np.zeros((0, len(self.class_names)))

    def predict(self, images: Sequence) -> np.ndarray:
        return np.array(self.class_names, dtype=object)[self.predict_proba(images).argmax(axis=1)]


def load_torchscript(path: str | os.PathLike, *, device: str = "cpu") -> TorchScriptClassifier:
    extra = {METADATA_NAME: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    return TorchScriptClassifier(module, json.loads(extra[METADATA_NAME]), device=device)
