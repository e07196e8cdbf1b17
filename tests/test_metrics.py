"""Metrics: equal to Quantus on the same arrays where Quantus has them, else to hand-derived values."""

import numpy as np
import pytest
import torch

from conftest import BrightSpot, disc_image
from extremal_contours import metrics as M


def _arrays(seed=0, n=4, h=12, w=14):
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(n, 1, h, w, generator=g)
    regions = torch.zeros(n, 1, h, w, dtype=torch.bool)
    regions[0, 0, 2:6, 3:9] = True
    regions[1, 0, 7:, :5] = True
    regions[2, 0, :, 10:] = True
    regions[3, 0, 4:8, 4:8] = True
    return maps, regions


@pytest.fixture(scope="module")
def quantus():
    return pytest.importorskip("quantus", reason="quantus (test-only) not installed")


def _q(metric, maps, regions=None):
    x = np.zeros((maps.shape[0], 3, *maps.shape[-2:]), dtype=np.float32)
    y = np.zeros(maps.shape[0], dtype=int)
    kwargs = {"model": None, "x_batch": x, "y_batch": y, "a_batch": maps.numpy().copy()}
    if regions is not None:
        kwargs["s_batch"] = regions.numpy().astype(float)
    return np.asarray(metric(**kwargs), dtype=float)


def test_localisation_metrics_equal_quantus(quantus):
    maps, regions = _arrays()
    opts = {"normalise": False, "abs": False, "disable_warnings": True}
    np.testing.assert_allclose(M.relevance_mass(maps, regions).numpy(), _q(quantus.RelevanceMassAccuracy(**opts), maps, regions), rtol=1e-5)
    np.testing.assert_allclose(M.relevance_rank(maps, regions).numpy(), _q(quantus.RelevanceRankAccuracy(**opts), maps, regions), rtol=1e-5)
    np.testing.assert_allclose(M.pointing_game(maps, regions, tolerance=0).numpy(), _q(quantus.PointingGame(**opts), maps, regions))


def test_structure_metrics_equal_quantus(quantus):
    maps, _ = _arrays(seed=1)
    maps = maps - 0.3  # signed: both take the absolute value
    opts = {"normalise": False, "abs": True, "disable_warnings": True}
    np.testing.assert_allclose(M.complexity(maps).numpy(), _q(quantus.Complexity(**opts), maps), rtol=1e-5)
    np.testing.assert_allclose(M.sparseness(maps).numpy(), _q(quantus.Sparseness(**opts), maps), rtol=1e-4)


def test_hand_values_and_ties():
    region = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    region[0, 0, :2, :2] = True  # 4 pixels
    binary = torch.zeros(1, 1, 4, 4)
    binary[0, 0, :2, :3] = 1  # 6 tied maximal pixels, 4 of them in the region
    assert M.relevance_mass(binary, region).item() == pytest.approx(4 / 6)
    # The 4 top slots are all among the 6 tied pixels: expected hits 4 * 4/6.
    assert M.relevance_rank(binary, region).item() == pytest.approx(4 / 6)
    uniform = torch.ones(1, 1, 4, 4)
    assert M.complexity(uniform).item() == pytest.approx(np.log(16), rel=1e-5)
    assert M.sparseness(uniform).item() == pytest.approx(0.0, abs=1e-6)
    one_hot = torch.zeros(1, 1, 4, 4)
    one_hot[0, 0, 3, 3] = 1
    assert M.sparseness(one_hot).item() == pytest.approx(15 / 16, rel=1e-4)
    # Pointing game: the peak 2 px from the region is a hit with a 2 px tolerance, a miss with 1.
    peak = torch.zeros(1, 1, 8, 8)
    peak[0, 0, 5, 1] = 1
    box = torch.zeros(1, 1, 8, 8, dtype=torch.bool)
    box[0, 0, :4, :4] = True
    assert M.pointing_game(peak, box, tolerance=2).item() == 1
    assert M.pointing_game(peak, box, tolerance=1).item() == 0
    assert torch.isnan(M.relevance_mass(peak, torch.zeros_like(box))).all()


def test_faithfulness_and_insertion_deletion_rank_a_good_map_above_a_bad_one():
    x, disc = disc_image()
    model = BrightSpot()
    classes = torch.tensor([0])
    good = disc.float()[None, None] + 0.01 * torch.rand(1, 1, *disc.shape, generator=torch.Generator().manual_seed(0))
    bad = 1 - good
    fc_good = M.faithfulness_correlation(model, x, good, classes, runs=40, subset=200, seed=0)
    fc_bad = M.faithfulness_correlation(model, x, bad, classes, runs=40, subset=200, seed=0)
    assert fc_good.item() > 0.5 > fc_bad.item()
    assert torch.equal(fc_good, M.faithfulness_correlation(model, x, good, classes, runs=40, subset=200, seed=0))
    good_auc = M.insertion_deletion(model, x, good, classes, steps=16)
    bad_auc = M.insertion_deletion(model, x, bad, classes, steps=16)
    assert good_auc["insertion"].item() > bad_auc["insertion"].item()
    assert good_auc["deletion"].item() < bad_auc["deletion"].item()
    curve = good_auc["insertion_curve"][0]
    assert curve.shape == (17,) and curve[-1] == pytest.approx(model(x).softmax(1)[0, 0].item(), rel=1e-5)
