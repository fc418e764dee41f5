"""xray-seg: semantic segmentation of prohibited items in X-ray security images.

Implements CWF-DeepLabv3+ (CSP-Xception + DWFF-ASPP), with CycleNet and IFBFNet
as alternatives, and the tooling around them: synthetic dual-energy X-ray data,
a Labelme-to-VOC converter, a tf.data pipeline, training, evaluation and export.
"""

__version__ = "0.1.0"
