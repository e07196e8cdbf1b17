"""The benchmark: every method on the same images, through the common interface, resumable.

:func:`run_benchmark` (:mod:`.runner`) runs each method on batches of a dataset's pictures and
appends the rows of every CSV (:mod:`.rows`) as soon as a batch is done, so a re-run continues
where the last one stopped; :mod:`.measure` computes the rows, :mod:`.runrecord` keeps ``run.json``
(the settings a folder's rows were made with), and :func:`summarise` (:mod:`.report`) turns the
rows into Markdown tables (mean, median and a 95% interval per metric); :mod:`.overlays` draws a small
picture of every method's mask of every picture (``overlays/``) for the HTML report. With
``sanity``, the model-parameter randomisation test (:mod:`extremal_contours.sanity`) writes
``sanity.csv``.
"""

from ..speed import FLOOR_BATCH, model_floor
from .config import SANITY_STEPS, SEEDED, SEEDED_STARTS, BenchmarkConfig
from .errors import BenchmarkEmpty, BenchmarkMismatch
from .overlays import OVERLAY_FOLDER, OVERLAY_SIDE, overlay_file
from .report import METRIC_RANGE, random_target_table, sanity_tables, speed_table, stability_table, summarise
from .rows import FIELDS, MAP_FIELDS, SANITY_FIELDS, STABILITY_FIELDS, merge_shards
from .runner import run_benchmark

__all__ = [
    "FIELDS", "FLOOR_BATCH", "MAP_FIELDS", "METRIC_RANGE", "OVERLAY_FOLDER", "OVERLAY_SIDE", "SANITY_FIELDS", "SANITY_STEPS",
    "SEEDED", "SEEDED_STARTS", "STABILITY_FIELDS", "BenchmarkConfig", "BenchmarkEmpty", "BenchmarkMismatch", "merge_shards",
    "model_floor", "overlay_file", "random_target_table", "run_benchmark", "sanity_tables", "speed_table",
    "stability_table", "summarise",
]  # fmt: skip
