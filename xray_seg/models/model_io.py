"""The two ends every model builder shares (docs/architecture.md, "Conventions").

- In: the raw 0..255 ``image`` input and its normalisation inside the model (no
  train/serve skew): :func:`image_input`.
- Out: a 1x1 classifier resized to the image's size (:func:`upsampled_logits`) and the
  model returning the logits, or ``{"logits": ..., "aux": ...}`` with auxiliary heads
  (:func:`segmentation_model`).
"""

from __future__ import annotations

import keras

from xray_seg.core.errors import ModelError
from xray_seg.layers.conv import ResizeTo
from xray_seg.models.outputs import MAIN_OUTPUT

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)
#: The Caffe ImageNet means (RGB order) that Keras Applications' ResNet weights were trained with.
CAFFE_MEAN = (123.68, 116.779, 103.939)


def pixel_normalization(name: str = "pixel_normalization") -> keras.layers.Layer:
    """Map raw 0..255 pixels to [-1, 1] inside the model (docs/architecture.md: no train/serve skew)."""
    return keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name=name)


def input_normalization(kind: str = "symmetric") -> keras.layers.Layer:
    """Pixel normalisation inside the model: ``"symmetric"`` maps 0..255 to [-1, 1] (from
    scratch, the default; also what Keras Applications' MobileNetV2 weights expect);
    ``"imagenet"`` uses ImageNet mean/std, for pretrained backbones; ``"caffe"`` subtracts the
    Caffe means without scaling, what Keras Applications' ResNet weights expect (their BGR
    order is handled when the weights are loaded)."""
    if kind == "symmetric":
        return pixel_normalization()
    if kind == "imagenet":
        return keras.layers.Normalization(
            mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD], name="pixel_normalization"
        )
    if kind == "caffe":
        return keras.layers.Normalization(mean=list(CAFFE_MEAN), variance=[1.0, 1.0, 1.0], name="pixel_normalization")
    raise ModelError(f"unknown normalization {kind!r}", fix='use normalization="symmetric", "imagenet" or "caffe"')


def image_input(input_shape, normalization: str = "symmetric"):
    """The raw-pixel input ``image`` of shape ``input_shape`` and its normalised pixels.

    Example:
        >>> from xray_seg.models.model_io import image_input
        >>> image, pixels = image_input((64, 64, 3))
        >>> image.name, tuple(pixels.shape)
        ('image', (None, 64, 64, 3))
    """
    image = keras.Input(tuple(input_shape), name="image")
    return image, input_normalization(normalization)(image)


def upsampled_logits(x, num_classes: int, image, *, classifier: str = "classifier", name: str = "logits", dtype=None):
    """A 1x1 classifier (with bias) on ``x``, bilinearly resized to ``image``'s size (layer ``name``)."""
    logits = keras.layers.Conv2D(num_classes, 1, name=classifier)(x)
    return ResizeTo(name=name, dtype=dtype)([logits, image])


def segmentation_model(image, logits, aux: dict | None = None, *, name: str) -> keras.Model:
    """The model from ``image`` to ``logits``, or to ``{"logits": logits, **aux}`` when ``aux`` is given."""
    if not aux:
        return keras.Model(image, logits, name=name)
    return keras.Model(image, {MAIN_OUTPUT: logits, **aux}, name=name)
