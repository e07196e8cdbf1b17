"""Library versions recorded with every saved explanation."""

from __future__ import annotations

import platform
from importlib import metadata

from ._version import __version__

_PACKAGES = ("torch", "torchvision", "timm", "numpy", "pillow", "captum")


def library_versions() -> dict[str, str]:
    """Versions of this package, Python and the libraries a result depends on."""
    versions = {"extremal-contours": __version__, "python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    versions["platform"] = platform.platform(terse=True)
    return versions
