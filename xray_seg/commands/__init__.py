"""Subcommands of the ``xray-seg`` CLI, one module each (see :mod:`xray_seg.cli`)."""
