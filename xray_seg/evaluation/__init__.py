"""Evaluation: paper 1's pixel metrics, reports, model comparison, FPS and FLOPs."""
