"""Grad-CAM heatmaps for the supported classifiers.

``grad_cam(model, layer, input_tensor, target_class=None) -> (heatmap, class_index)``
    ``layer`` is a dotted module path (``ModelInfo.cam_layer``: ``layer4`` for ResNets, the last
    feature block for VGG/DenseNet/EfficientNet/MobileNet, the head activation for
    EfficientNet-Lite0). The heatmap is an H×W float array in [0, 1] at the input's resolution:
    ReLU of the activation maps weighted by their spatially averaged gradients for the target class
    (the predicted one by default).
``overlay_png(image, heatmap, alpha=0.45) -> bytes``: the heatmap (jet colours) blended on the image.
``explain(trainer, image, target_class=None) -> dict``: probabilities, label, heatmap and overlay PNG
for one image through a trained ``ImageClassifierTrainer``.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import torch
from PIL import Image
from torch import nn

from .architectures import get_submodule


class _Capture:
    """Keeps the last forward output of a module and the gradient flowing into that very tensor."""

    def __init__(self, module: nn.Module):
        self.activation: torch.Tensor | None = None
        self.gradient: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._forward)

    def _forward(self, _module, _inputs, output):
        self.activation = output
        # A module called several times (shared activations) registers a hook per call; only the
        # gradient of the last call's output is kept.
        output.register_hook(lambda grad, tensor=output: self._backward(tensor, grad))

    def _backward(self, tensor: torch.Tensor, grad: torch.Tensor) -> None:
        if tensor is self.activation:
            self.gradient = grad.detach()

    def close(self) -> None:
        self.handle.remove()


def grad_cam(
    model: nn.Module, layer: str, input_tensor: torch.Tensor, target_class: int | None = None
) -> tuple[np.ndarray, int]:
    was_training = model.training
    model.eval()
    capture = _Capture(get_submodule(model, layer))
    try:
        inputs = input_tensor.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            logits = model(inputs)
            index = int(logits[0].argmax()) if target_class is None else int(target_class)
            model.zero_grad(set_to_none=True)
            logits[0, index].backward()
        activation = capture.activation.detach()[0]
        gradient = capture.gradient[0]
    finally:
        capture.close()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    weights = gradient.mean(dim=(1, 2))
    cam = torch.relu((weights[:, None, None] * activation).sum(0))
    cam = cam[None, None]
    cam = torch.nn.functional.interpolate(cam, size=input_tensor.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    cam = cam.cpu().numpy()
    peak = float(cam.max())
    heatmap = cam / peak if peak > 0 else np.zeros_like(cam)
    return np.clip(heatmap, 0.0, 1.0).astype(np.float32), index


def overlay_png(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.45) -> bytes:
    base = np.asarray(image.convert("RGB"))
    height, width = base.shape[:2]
    resized = cv2.resize((heatmap * 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_LINEAR)
    colours = cv2.cvtColor(cv2.applyColorMap(resized, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    blended = (base * (1 - alpha) + colours * alpha).clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blended).save(buffer, format="PNG")
    return buffer.getvalue()


def explain(trainer, image, target_class: int | None = None) -> dict:
    """Prediction + Grad-CAM for one image (PIL, path or bytes) through a trained trainer."""
    from .images import decode_image

    if not isinstance(image, Image.Image):
        image = decode_image(image).image
    image = image.convert("RGB")
    tensor = trainer.preprocess(image).to(next(trainer.model_.parameters()).device)
    heatmap, index = grad_cam(trainer.model_, trainer.info_.cam_layer, tensor, target_class)
    proba = trainer.predict_proba([image])[0]
    return {
        "label": trainer.class_names_[int(proba.argmax())],
        "confidence": float(proba.max()),
        "probabilities": {name: float(p) for name, p in zip(trainer.class_names_, proba, strict=True)},
        "explained_class": trainer.class_names_[index],
        "heatmap": heatmap,
        "overlay_png": overlay_png(image, heatmap),
    }
