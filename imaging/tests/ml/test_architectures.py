import pytest
import torch

from imaging.ml.architectures import (
    ARCHITECTURES,
    build_model,
    get_submodule,
    torchvision_weights_filename,
)

# Heavy backbones are built on the meta device: shapes and wiring are checked without spending
# seconds initialising 100M+ parameters on a shared CPU.
HEAVY = {"vgg16", "vgg19", "densenet121", "resnet101", "resnet50"}


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_builds_for_three_classes(name):
    if name in HEAVY:
        with torch.device("meta"):
            model, info = build_model(name, 3, pretrained=False)
            output = model.eval()(torch.empty(2, 3, 32, 32))
    else:
        model, info = build_model(name, 3, pretrained=False)
        with torch.no_grad():
            output = model.eval()(torch.randn(2, 3, 32, 32))
    assert tuple(output.shape) == (2, 3)
    assert info.weights == "random initialisation"
    assert get_submodule(model, info.cam_layer) is not None


def test_efficientnet_lite0_loads_the_packaged_imagenet_weights_and_uses_minus_one_to_one():
    model, info = build_model("efficientnet_lite0", 4)
    assert info.pretrained and info.weights.startswith("imagenet weights from ")
    assert info.weights.endswith("efficientnet-lite0-57934424.pth")
    assert info.mean == (0.5, 0.5, 0.5) and info.std == (0.5, 0.5, 0.5)
    assert model._fc.out_features == 4
    # PyTorch's momentum, not TensorFlow's 0.01, so a short fine-tune adapts the running statistics.
    assert all(m.momentum == 0.1 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_torchvision_weights_come_from_the_weights_folder_when_present(tmp_path):
    donor, _ = build_model("mobilenet_v3_small", 2, pretrained=False)
    import torchvision

    full = torchvision.models.mobilenet_v3_small(weights=None)
    torch.save(full.state_dict(), tmp_path / torchvision_weights_filename("mobilenet_v3_small"))
    model, info = build_model("mobilenet_v3_small", 2, pretrained_dir=tmp_path)
    assert info.pretrained and str(tmp_path) in info.weights
    first = next(iter(full.state_dict()))
    assert torch.equal(model.state_dict()[first], full.state_dict()[first])
    assert info.mean == (0.485, 0.456, 0.406)


def test_torchvision_models_start_from_scratch_without_weights_and_never_download(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    _, info = build_model("resnet18", 3, pretrained_dir=tmp_path)
    assert not info.pretrained and info.weights == "random initialisation"


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="Unknown architecture"):
        build_model("alexnet", 3)
