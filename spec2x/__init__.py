"""spec2x: the JWST stage-2 spectroscopic pipeline as lazy, chunked array transforms."""

__version__ = "0.1.0"

# Imported on first use: ``import spec2x`` stays light for the xarray backend entry point, which
# xarray imports whenever it lists its engines.
_EXPORTS = {"open_exposure": "spec2x.exposure", "Calibrated": "spec2x.pipeline", "calibrate": "spec2x.pipeline",
            "run": "spec2x.pipeline", "open_products": "spec2x.reader"}

__all__ = ["Calibrated", "__version__", "calibrate", "open_exposure", "open_products", "run"]


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'spec2x' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
