"""End to end through a vision transformer (timm's ``vit_tiny_patch16_224``, random weights, seeded):
a classifier with the class scores, and an embedding model (no head) with the similarity score."""

import copy

import pytest
import torch

from extremal_contours import ExtremalContour, targets

timm = pytest.importorskip("timm")

QUICK = {"iterations": 4, "starts": 1, "scan": 2, "harmonics": 4, "batch_size": 8, "progress": False}


def _vit(num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes)


def _picture() -> torch.Tensor:
    return torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_a_vit_classifier_is_explained_and_left_as_it_was():
    vit = _vit(10)
    reference = copy.deepcopy(vit).eval()
    vit.train()
    vit.blocks[0].eval()  # a mixed mode must come back mixed
    vit.patch_embed.proj.weight.requires_grad_(False)
    flags = [m.training for m in vit.modules()]
    wants_grad = [p.requires_grad for p in vit.parameters()]
    x = _picture()
    result = ExtremalContour(vit, **QUICK).attribute(x, areas=(0.1, 0.3))
    # The model as it was given: modes, gradient flags, no gradients, the same weights.
    assert [m.training for m in vit.modules()] == flags
    assert [p.requires_grad for p in vit.parameters()] == wants_grad
    assert all(p.grad is None for p in vit.parameters())
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in vit.state_dict().items())

    assert result.masks.shape == (1, 2, 1, 224, 224) and result.soft_masks.shape == (1, 2, 1, 224, 224)
    assert result.centre.shape == (1, 2, 2) and result.coeffs.shape == (1, 2, 4, 2) and result.history.shape == (1, 2, 4)
    assert (result.masks.float().mean((2, 3, 4)) - torch.tensor([[0.1, 0.3]])).abs().max() < 0.01
    for scores in (result.clean_score, result.preserve_score, result.delete_score, result.preserve_probability):
        assert torch.isfinite(scores).all()
    with torch.no_grad():
        clean = reference(x)
    assert result.classes.tolist() == [int(clean.argmax())] and result.score == "logit"
    torch.testing.assert_close(result.clean_score, clean[0, result.classes], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("score", ["similarity", targets.similarity])
def test_a_vit_without_a_head_is_explained_by_similarity(score):
    vit = _vit(0).eval()  # an embedding model: (B, 192) features
    x = _picture()
    with torch.no_grad():
        assert vit(x).shape == (1, 192)
    result = ExtremalContour(vit, score=score, **QUICK).attribute(x, target=None, areas=(0.2,))
    assert result.score == "similarity" and result.settings["score"] == "similarity"
    assert result.classes is None and result.clean_probability is None
    torch.testing.assert_close(result.clean_score, torch.ones(1))  # the clean output is its own reference
    assert torch.isfinite(result.preserve_score).all() and (result.preserve_score <= 1 + 1e-5).all()
    assert abs(result.masks.float().mean().item() - 0.2) < 0.01

