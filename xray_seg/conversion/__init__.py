"""Annotations in: Labelme folders to VOC segmentation datasets, and dataset statistics."""
