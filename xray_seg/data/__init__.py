"""Data in: synthetic X-ray scans, Labelme reading, VOC conversion, the tf.data pipeline."""
