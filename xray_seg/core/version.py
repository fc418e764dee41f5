"""The package version (``xray_seg.__version__`` re-exports it; setup.cfg reads it from there)."""

__version__ = "0.1.0"
