"""spec2x: the JWST stage-2 spectroscopic pipeline as lazy, chunked array transforms."""

__version__ = "0.1.0"

from spec2x.exposure import open_exposure  # noqa: E402
from spec2x.pipeline import Calibrated, calibrate, run  # noqa: E402

__all__ = ["Calibrated", "__version__", "calibrate", "open_exposure", "run"]
