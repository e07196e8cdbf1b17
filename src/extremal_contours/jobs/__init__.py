"""The command line's jobs: explain pictures into result folders or a result store, and redraw
stored explanations. The jobs call the library; the library never imports them."""

from .explain import OVERLAY_MAX_SIDE, explain_folder, writable
from .naming import Fingerprints, image_key, result_folders, safe_name
from .say import area_words, summary_line
from .show import list_saved, show_saved
from .spec import ExplainJob, JobError
from .store import STORE_FILE, explain_to_store

__all__ = [
    "OVERLAY_MAX_SIDE",
    "STORE_FILE",
    "ExplainJob",
    "Fingerprints",
    "JobError",
    "area_words",
    "explain_folder",
    "explain_to_store",
    "image_key",
    "list_saved",
    "result_folders",
    "safe_name",
    "show_saved",
    "summary_line",
    "writable",
]  # fmt: skip
