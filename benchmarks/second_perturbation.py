"""Do the contour's adversarial regions survive a second perturbation? A prototype measurement.

The random-class regions of a ``benchmark --random-target`` run that made their class likely
(preserved probability above 0.1) are explained again and scored twice: with the blur they were
optimised against and with a grey fill (the picture's mean). With ``--design alternate`` the search
optimises against blur and the grey fill on alternate steps (a prototype patched into the objective
for this measurement, not a library option). True-class regions of the first pictures of the set are
scored the same way, to see what the design costs.

    python benchmarks/second_perturbation.py --data DIR --random-run OUT_OF_RANDOM_TARGET_RUN --design default
    python benchmarks/second_perturbation.py --data DIR --random-run OUT_OF_RANDOM_TARGET_RUN --design alternate
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from extremal_contours import ExtremalContour, load_image, load_model
from extremal_contours.benchmark.measure import random_class
from extremal_contours.benchmark.rows import PER_IMAGE, read_table
from extremal_contours.data import open_dataset
from extremal_contours.explainer import objective
from extremal_contours.modelcall import ModelRunner
from extremal_contours.perturbation import Perturbation


def alternate_with_grey_fill() -> None:
    """Patch the objective: every other optimisation step perturbs with a grey fill instead of blur
    (the binary evaluations, made without gradients, keep the blur)."""
    play = objective.Problem.play
    steps = {"n": 0}

    def patched(self, rows, masks, flip):
        if not torch.is_grad_enabled():
            return play(self, rows, masks, flip)
        steps["n"] += 1
        if steps["n"] % 2:
            return play(self, rows, masks, flip)
        blur, self.perturb = self.perturb, Perturbation(self.perturb.x, "constant", fill="mean")
        try:
            return play(self, rows, masks, flip)
        finally:
            self.perturb = blur

    objective.Problem.play = patched


def probabilities(run: ModelRunner, x: torch.Tensor, mask: torch.Tensor, cls: int) -> tuple[float, float, float]:
    """The class's probability on the clean picture, with the region kept under blur, and under a grey fill."""
    index = torch.zeros(1, dtype=torch.long)
    with torch.no_grad():
        clean = float(run(x).softmax(-1)[0, cls])
        kept = [float(run(Perturbation(x, *kind)(mask[None, None].float(), index)).softmax(-1)[0, cls]) for kind in (("blur",), ("constant",))]
    return clean, kept[0], kept[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the folder of labelled pictures the random-target run used")
    parser.add_argument("--random-run", required=True, help="a benchmark --random-target folder (its per_image.csv)")
    parser.add_argument("--design", choices=("default", "alternate"), default="default")
    parser.add_argument("--true", type=int, default=10, help="true-class pictures (every 15th of the set)")
    args = parser.parse_args()
    run_folder = Path(args.random_run)
    if not (run_folder / PER_IMAGE.name).is_file():
        print(f"error: {run_folder / PER_IMAGE.name} not found: give the folder of a benchmark --random-target run", file=sys.stderr)
        return 2
    rows = read_table(run_folder, PER_IMAGE)
    likely = {r["image"] for r in rows if r["method"] == "contour" and float(r["preserved_probability"]) > 0.1}
    torch.set_num_threads(1)
    loaded = load_model()
    if args.design == "alternate":
        alternate_with_grey_fill()
    explainer = ExtremalContour(loaded.model, progress=False)
    run = ModelRunner(loaded.model, channels_last=False, device=torch.device("cpu"))
    samples = list(open_dataset(args.data))
    groups = {"random class": [s for s in samples if s.name in likely], "true class": samples[::15][: args.true]}
    for group, chosen in groups.items():
        ratios, above = [], 0
        for sample in chosen:
            x = loaded.preprocess(load_image(sample.path)[0], "center")
            with torch.no_grad():
                predicted = int(run(x).argmax())
            cls = random_class(sample.name, predicted, 1000) if group == "random class" else int(sample.label)
            mask = explainer.attribute(x, cls).masks[0, 0, 0]
            clean, blur, grey = probabilities(run, x, mask, cls)
            ratios.append(blur / clean)
            above += blur > 0.1
            print(f"{group}: {sample.name}: class {cls}, clean {clean:.2e}, kept under blur {blur:.4f}, under grey {grey:.4f}", flush=True)
        print(f"{group}: {len(chosen)} pictures, median preserve ratio (blur) {statistics.median(ratios):.3g}, kept above 0.1 under blur on {above}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
