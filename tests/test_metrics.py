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


def test_faithfulness_correlation_equals_quantus_on_the_same_subsets(quantus, tiny):
    """Quantus' defaults (black = each image's minimum, subsets of C*H*W values, logits), with its draws
    replayed from numpy's seed."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 40, 48, generator=g) * 2 - 1
    maps = torch.rand(2, 1, 40, 48, generator=g)
    classes = torch.tensor([1, 3])
    runs, size = 20, 300
    np.random.seed(0)
    metric = quantus.FaithfulnessCorrelation(nr_runs=runs, subset_size=size, disable_warnings=True, return_aggregate=False)
    expected = np.asarray(
        metric(model=tiny, x_batch=x.numpy(), y_batch=classes.numpy(), a_batch=maps.numpy(), device="cpu"), dtype=float
    )
    np.random.seed(0)
    draws = []
    for _ in range(runs):
        draws.append([np.random.choice(x[0].numel(), size, replace=False) for _ in range(2)])
        np.random.uniform(size=2)  # Quantus also draws a "uniform" baseline per image each run, unused with "black"
    subsets = torch.from_numpy(np.array(draws)).permute(1, 0, 2)  # (N, runs, subset)
    ours = M.faithfulness_correlation(
        tiny, x, maps, classes, runs=runs, subset=size, baseline="black", features="elements", subsets=subsets
    )
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-4, atol=1e-5)
    assert np.abs(expected).max() > 0.05  # not a degenerate case
    # A map with one value per input value (C x H x W) is read value by value, as Quantus does.
    maps3 = torch.rand(2, 3, 40, 48, generator=g)
    np.random.seed(0)
    expected3 = np.asarray(
        metric(model=tiny, x_batch=x.numpy(), y_batch=classes.numpy(), a_batch=maps3.numpy(), device="cpu"), dtype=float
    )
    ours3 = M.faithfulness_correlation(
        tiny, x, maps3, classes, runs=runs, subset=size, baseline="black", features="elements", subsets=subsets
    )
    np.testing.assert_allclose(ours3.numpy(), expected3, rtol=1e-4, atol=1e-5)
    # Our default (blurred pixels) is another protocol, and gives other values.
    assert not torch.allclose(ours, M.faithfulness_correlation(tiny, x, maps, classes, runs=runs, subset=size))


def test_faithfulness_correlation_rejects_bad_options(tiny):
    x, maps, classes = torch.rand(1, 3, 8, 8), torch.rand(1, 1, 8, 8), torch.tensor([0])
    with pytest.raises(ValueError, match="baseline"):
        M.faithfulness_correlation(tiny, x, maps, classes, baseline="white")
    with pytest.raises(ValueError, match="features"):
        M.faithfulness_correlation(tiny, x, maps, classes, features="channels")
    with pytest.raises(ValueError, match="subset must be between"):
        M.faithfulness_correlation(tiny, x, maps, classes, subset=64)
    with pytest.raises(ValueError, match="subsets must have shape"):
        M.faithfulness_correlation(tiny, x, maps, classes, runs=2, subset=4, subsets=torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="subsets index"):
        M.faithfulness_correlation(tiny, x, maps, classes, runs=2, subset=4, subsets=torch.full((1, 2, 4), 64))
    with pytest.raises(ValueError, match="integer indices"):
        M.faithfulness_correlation(tiny, x, maps, classes, runs=2, subset=4, subsets=torch.full((1, 2, 4), 2.7))
    with pytest.raises(ValueError, match="repeat an index"):
        M.faithfulness_correlation(tiny, x, maps, classes, runs=2, subset=4, subsets=torch.tensor([[[0, 1, 2, 3], [5, 6, 5, 7]]]))
    with pytest.raises(ValueError, match="runs must be >= 2"):
        M.faithfulness_correlation(tiny, x, maps, classes, runs=1, subset=4)
    with pytest.raises(ValueError, match="one value per pixel; got"):
        M.faithfulness_correlation(tiny, x, torch.rand(1, 3, 8, 8), classes, subset=4)


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


class _MeanIsProbability(torch.nn.Module):
    """Class 0's probability is the image's mean ``m`` (logits ``log m`` and ``log(1 - m)``), class 1's
    is ``1 - m``: insertion and deletion curves are sums of pixel values that can be written down."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean((1, 2, 3))
        return torch.stack([m.clamp(min=1e-12).log(), (1 - m).clamp(min=1e-12).log()], 1)


def test_insertion_and_deletion_auc_by_hand():
    pixels = torch.tensor([[0.8, 0.4], [0.2, 0.6]])  # mean 0.5
    x = pixels.expand(3, 3, 2, 2).clone()  # three images, three equal channels
    maps = torch.stack(
        [
            torch.tensor([[4.0, 1.0], [3.0, 2.0]]),  # order 0.8, 0.2, 0.6, 0.4
            torch.tensor([[1.0, 4.0], [2.0, 3.0]]),  # order 0.4, 0.6, 0.2, 0.8
            torch.zeros(2, 2),  # all tied: pixel order 0.8, 0.4, 0.2, 0.6
        ]
    )[:, None]
    classes = torch.tensor([0, 0, 1])
    out = M.insertion_deletion(_MeanIsProbability(), x, maps, classes, steps=4, baseline=torch.zeros_like(x))
    # Inserting into black: the mean after k pixels is the sum of the first k values over 4.
    inserted = [[0, 0.2, 0.25, 0.4, 0.5], [0, 0.1, 0.25, 0.3, 0.5], [1 - v for v in (0, 0.2, 0.3, 0.35, 0.5)]]
    deleted = [[0.5, 0.3, 0.25, 0.1, 0], [0.5, 0.4, 0.25, 0.2, 0], [1 - v for v in (0.5, 0.3, 0.2, 0.15, 0)]]
    torch.testing.assert_close(out["insertion_curve"], torch.tensor(inserted), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["deletion_curve"], torch.tensor(deleted), atol=1e-6, rtol=0)
    # Trapezoids of width 1/4: (first/2 + middle three + last/2) / 4.
    torch.testing.assert_close(out["insertion"], torch.tensor([0.275, 0.225, 0.725]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out["deletion"], torch.tensor([0.225, 0.275, 0.775]), atol=1e-6, rtol=0)
    # Two steps: 0, 2 and 4 pixels.
    two = M.insertion_deletion(_MeanIsProbability(), x[:1], maps[:1], classes[:1], steps=2, baseline=torch.zeros_like(x[:1]))
    torch.testing.assert_close(two["insertion"], torch.tensor([0.5 * (0.25 + 0.25)]), atol=1e-6, rtol=0)
    torch.testing.assert_close(two["deletion"], torch.tensor([0.5 * (0.25 + 0.25)]), atol=1e-6, rtol=0)


def test_insertion_deletion_default_baseline_is_the_blurred_image():
    # A flat image blurs to itself: nothing changes along either curve.
    x = torch.full((1, 3, 16, 16), 0.3)
    maps = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    out = M.insertion_deletion(_MeanIsProbability(), x, maps, torch.tensor([0]), steps=8)
    torch.testing.assert_close(out["insertion_curve"], torch.full((1, 9), 0.3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["insertion"], torch.tensor([0.3]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["deletion"], torch.tensor([0.3]), atol=1e-5, rtol=0)
    # A bright top half blurs towards its mean, so deleting it lowers the curve and inserting raises it.
    x[:, :, :8] = 0.7
    top = torch.zeros(1, 1, 16, 16)
    top[:, :, :8] = 1.0
    out = M.insertion_deletion(_MeanIsProbability(), x, top, torch.tensor([0]), steps=2)
    blurred_mean = out["insertion_curve"][0, 0].item()
    assert 0.45 < blurred_mean < 0.55 and out["deletion_curve"][0, 1].item() < 0.5 < out["insertion_curve"][0, 1].item()


def test_pieces_and_holes_by_hand():
    m = torch.zeros(4, 20, 30, dtype=torch.bool)
    m[0, 2:5, 2:5] = True
    m[0, 10:12, 10:20] = True  # two separate blocks
    m[1, 2:10, 2:10] = True
    m[1, 4:6, 4:6] = False  # one block with a hole
    m[2, 3, 3] = m[2, 4, 4] = True  # diagonal neighbours: one piece
    m[3, 0:20, 5] = True  # a wall from border to border: the background splits, but no hole
    assert M.pieces(m).tolist() == [2, 1, 1, 1]
    assert M.holes(m).tolist() == [0, 1, 0, 0]
    assert M.pieces(torch.zeros(1, 5, 5, dtype=torch.bool)).tolist() == [0]


def _drawn(*rows: str) -> torch.Tensor:
    """A bool mask ``(1, 1, H, W)`` drawn with ``#`` (inside) and ``.`` (outside)."""
    return torch.tensor([[ch == "#" for ch in row] for row in rows])[None, None]


@pytest.mark.parametrize(
    "rows, count_pieces, count_holes",
    [
        # A ring around a dot: two pieces, one hole (the dot sits in it).
        (("#####", "#...#", "#.#.#", "#...#", "#####"), 2, 1),
        # Two holes in one piece.
        (("#######", "#.###.#", "#######"), 1, 2),
        # Background that reaches the border only through a diagonal gap is still a hole (4-connected).
        (("###..", "#.#..", "##..."), 1, 1),
        # Pieces touching at a corner are one (8-connected); the notch between them reaches the border.
        (("##...", "##...", "..##.", "..##."), 1, 0),
        # A U opening onto the border has no hole; three separate dots are three pieces.
        (("#.#..#", "#.#...", "###.#."), 3, 0),
        # Full and empty.
        (("###", "###"), 1, 0),
        (("...", "..."), 0, 0),
    ],
)
def test_pieces_and_holes_of_drawn_masks(rows, count_pieces, count_holes):
    mask = _drawn(*rows)
    assert M.pieces(mask).tolist() == [count_pieces] and M.holes(mask).tolist() == [count_holes]
    assert M.pieces(mask).dtype == torch.long and M.holes(mask[:, 0]).tolist() == [count_holes]  # (N, H, W) too


def test_pieces_and_holes_equal_scipy_on_random_masks():
    ndimage = pytest.importorskip("scipy.ndimage")
    g = torch.Generator().manual_seed(1)
    masks = torch.cat([torch.rand(4, 1, 40, 50, generator=g) < p for p in (0.3, 0.5, 0.6)])
    arrays = [x[0].numpy() for x in masks]
    assert M.pieces(masks).tolist() == [ndimage.label(a, structure=np.ones((3, 3)))[1] for a in arrays]
    assert M.holes(masks).tolist() == [ndimage.label(np.pad(~a, 1, constant_values=True))[1] - 1 for a in arrays]


def test_contours_rasterize_to_one_piece_without_holes():
    """Smooth contours are one piece without holes on the pixel grid too. Rougher ones are still one
    region in the plane, but the grid can cut spikes thinner than a pixel off (several pieces; seen
    with harmonics of 0.3 here) or close a one-pixel notch into a hole (seen with 0.1 and 0.2 on a
    small region): the benchmark counts both on real explanations."""
    from extremal_contours import contour as C

    g = torch.Generator().manual_seed(0)
    n, height, width = 32, 48, 64
    extent = C.image_extent(height, width)
    centre = (torch.rand(n, 2, generator=g) - 0.5) * torch.tensor(extent)
    coeffs = torch.randn(n, 8, 2, generator=g) * 0.07
    for area in (0.03, 0.1, 0.3):
        scale = C.scale_for_area(coeffs, area, centre, extent)
        masks = C.rasterize(centre, coeffs, scale, height, width, edge=2.0) > 0.5
        assert M.pieces(masks).tolist() == [1] * n
        assert M.holes(masks).tolist() == [0] * n
