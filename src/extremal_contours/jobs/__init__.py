"""The command line's jobs: explain pictures into result folders or a result store, and redraw
stored explanations. The jobs call the library; the library never imports them."""

from .explain import OVERLAY_MAX_SIDE, explain_folder, summary_line
from .naming import Fingerprints, image_key, result_folders, safe_name
from .show import show_stored
from .spec import ExplainJob, JobError
from .store import STORE_FILE, explain_to_store

__all__ = [
    "OVERLAY_MAX_SIDE", "STORE_FILE", "ExplainJob", "Fingerprints", "JobError", "explain_folder", "explain_to_store",
    "image_key", "result_folders", "safe_name", "show_stored", "summary_line",
]  # fmt: skip
