"""An HTML report of any folder the project writes: one self-contained page (no network resource)
with a gallery of the pictures and their overlays, a large view per picture, a table that sorts
and filters, and, for a benchmark, its summary tables and each picture across methods.

Example:
    >>> from extremal_contours.report import write_report
    >>> write_report("explanations")                                    # doctest: +SKIP
    PosixPath('explanations/report.html')
"""

from .markdown import markdown_to_html
from .page import REPORT_FILE, ReportError, collect, render, write_report

__all__ = ["REPORT_FILE", "ReportError", "collect", "markdown_to_html", "render", "write_report"]
