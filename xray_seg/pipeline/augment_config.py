"""The training augmentation's settings, without TensorFlow, so that a config (and a ``--set``
typo) is checked before TensorFlow loads; the augmentation itself is :mod:`xray_seg.pipeline.augment`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class AugmentConfig:
    """Training augmentation; the defaults are paper-1-like full augmentation.

    Args:
        enabled: master switch; False = fit and pad only (no randomness).
        scale_range: random scale factor range (uniform), applied after fitting the image
            to the training size; ``(1.0, 1.0)`` switches it off.
        hflip: random horizontal flip (probability 0.5).
        vflip: random vertical flip (probability 0.5).
        rotate: random rotation about the window centre.
        rotate_prob: probability of rotating a sample (when ``rotate``).
        max_rotation_deg: angles are uniform in ``[-max, max]`` degrees.
        sharpen_prob: probability of unsharp-mask sharpening; 0 switches it off.
        sharpen_amount: range of the unsharp-mask strength ``a``.
        brightness: maximum additive shift as a fraction of 255; 0 switches it off.
        contrast: maximum relative contrast change; 0 switches it off.
        gamma: range of the gamma exponent (log-uniform); ``(1.0, 1.0)`` switches it off.
        noise_std: maximum standard deviation of additive Gaussian noise in grey levels; 0 = off.
        image_fill: image value where padding or rotation leaves no pixel (mask gets 255).
        foreground_crop_prob: probability of centring the crop on a foreground pixel
            (labels 1..254) instead of placing it uniformly; 0 switches it off. It only
            matters when the crop is smaller than the scaled image.
        tip_prob: probability of threat image projection into a sample, before the geometry
            (:mod:`xray_seg.pipeline.tip`); 0 (default) switches it off.
        tip_max_threats: a projected sample gets 1..tip_max_threats threats (uniform).
        tip_library: VOC folder the threats are cut from ("" = the training folder).
        tip_library_split: split of ``tip_library`` to cut threats from.
        tip_scale_range: scale range of a projected threat (uniform).
        tip_rotate: rotate projected threats uniformly over the full circle.
        tip_air: ``white`` (air = 255) or ``estimate`` (from each library scan's background).
        tip_bag_threshold: grey level (channel mean) below which a target pixel is bag, not
            air; threat centres are drawn among bag pixels.
    """

    enabled: bool = True
    scale_range: tuple = (0.5, 2.0)
    hflip: bool = True
    vflip: bool = True
    rotate: bool = True
    rotate_prob: float = 0.5
    max_rotation_deg: float = 180.0
    sharpen_prob: float = 0.3
    sharpen_amount: tuple = (0.5, 1.5)
    brightness: float = 0.1
    contrast: float = 0.2
    gamma: tuple = (0.8, 1.25)
    noise_std: float = 3.0
    image_fill: float = 255.0
    foreground_crop_prob: float = 0.0
    tip_prob: float = 0.0
    tip_max_threats: int = 1
    tip_library: str = ""
    tip_library_split: str = "train"
    tip_scale_range: tuple = (0.8, 1.25)
    tip_rotate: bool = True
    tip_air: str = "white"
    tip_bag_threshold: float = 240.0

    def __post_init__(self):
        lo, hi = (float(v) for v in self.scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")
        glo, ghi = (float(v) for v in self.gamma)
        if not 0 < glo <= ghi:
            raise ValueError(f"gamma must satisfy 0 < low <= high, got {self.gamma}")
        tlo, thi = (float(v) for v in self.tip_scale_range)
        if not 0 < tlo <= thi or int(self.tip_max_threats) < 1 or self.tip_air not in ("white", "estimate"):
            raise ValueError(
                f"need 0 < tip_scale_range low <= high, tip_max_threats >= 1 and tip_air white|estimate, "
                f"got {self.tip_scale_range}, {self.tip_max_threats}, {self.tip_air!r}"
            )
        for name in ("rotate_prob", "sharpen_prob", "foreground_crop_prob", "tip_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        for name in ("brightness", "contrast", "noise_std", "max_rotation_deg"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
