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
