"""Bundled YAML presets (training configurations); see xray_seg.core.config."""
