"""The training configuration: dataclasses resolved from YAML presets and overrides.

Bundled presets (``xray_seg/presets``):

- ``cwf_xray512``: paper 1 section 4.1 (Table 1) - Adam, lr 1e-4 (constant), 100 epochs,
  batch 4, 512x512, no pretrained weights.
- ``demo_cpu``: a small CWF-DeepLabv3+ that learns the synthetic data in minutes on
  a 2-core CPU (the demo's preset).
- ``sgd_poly``: SGD, momentum 0.9, weight decay 1e-4, poly(0.9) with linear warm-up,
  the recipe CycleNet and IFBFNet build on.

Learning-rate scaling: ``data.batch_size`` is per replica, so the global batch is
``batch_size x replicas``. With ``optim.reference_batch`` set, the learning rate is
scaled linearly, ``lr x global_batch / reference_batch`` (Goyal et al. 2017); left at
0 the rate is used as given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xray_seg.core.config import load_config, nest_overrides
from xray_seg.pipeline.augment_config import AugmentConfig


@dataclass
class ModelConfig:
    name: str = "cwf_deeplabv3plus"
    width: float = 1.0
    aux: bool = False  # train the model's auxiliary heads too (BiSeNetV2, CycleNet, IFBFNet)
    options: dict = field(default_factory=dict)  # extra keyword arguments for the builder
    # A local weights file for the backbone (models/backbones/pretrained.py): a save of the same
    # backbone, or Keras Applications ImageNet weights (MobileNetV2, ResNet50/101); "" = none.
    backbone_weights: str = ""


@dataclass
class DataConfig:
    voc_dir: str = ""
    train_split: str = "train"
    val_split: str = "val"
    image_size: tuple = (512, 512)
    # Train on crops of this size cut from images fitted to image_size; () = image_size.
    # The model is then built for any input size and validated at image_size.
    crop_size: tuple = ()
    batch_size: int = 4  # per replica
    cache: bool = False  # keep decoded originals in memory
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class OptimConfig:
    optimizer: str = "adam"  # adam | adamw | sgd
    lr: float = 1e-4
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | poly
    power: float = 0.9  # poly power
    warmup_epochs: float = 0.0
    clipnorm: float = 0.0  # global gradient-norm clipping; 0 = off
    reference_batch: int = 0  # linear LR scaling reference; 0 = off
    lr_multipliers: dict = field(default_factory=dict)  # {regex over variable path: factor}


@dataclass
class LossConfig:
    type: str = "ce"  # ce | ohem | dice | focal | lovasz, or a sum such as ce+dice (training/losses.py)
    weights: tuple = ()  # one weight per term of a sum (e.g. [1.0, 1.0] for ce+dice); () = all 1
    ohem_thresh: float = 0.7
    ohem_min_kept: int = 100_000
    focal_gamma: float = 2.0
    dice_smooth: float = 1.0
    lovasz_classes: str = "present"  # present | all
    lovasz_per_image: bool = False
    class_weights: str = ""  # "" (none), "auto" (median frequency of the train split) or a JSON file from data-stats
    aux_weight: float = 0.4


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    epochs: int = 100
    steps_per_epoch: int = 0  # 0 = one pass over the training split
    seed: int = 0
    deterministic: bool = False
    mixed_precision: str = ""  # "" | mixed_float16 (GPU) | mixed_bfloat16 (CPUs with AMX; slower without)
    jit_compile: bool = False
    sync_bn: bool = False
    val_every: int = 1
    num_val_images: int = 4  # prediction images logged to TensorBoard each validation
    # Fine-tuning (training/finetune.py, docs/training.md "Fine-tuning"): freeze "backbone" for
    # the first freeze_epochs epochs ("" = nothing frozen); stop when val mIoU has not improved
    # for early_stop_patience validations in a row (0 = off).
    freeze: str = ""
    freeze_epochs: int = 0
    early_stop_patience: int = 0
    # Start from a model (training/init_source.py): a run folder (RUN or RUN:last), a .keras or
    # .weights.h5 file, or preset:NAME; "" = from scratch. init_classes: the class_names.txt of
    # a source that names no classes (a plain .weights.h5). init_sha256 is written by train:
    # the SHA-256 of the file the weights came from (a config that gives one must match it).
    init: str = ""
    init_classes: str = ""
    init_sha256: str = ""

    @classmethod
    def from_preset(cls, name: str | None = None, **overrides) -> TrainConfig:
        """A bundled preset (or a YAML file; None = the defaults) with Python overrides.

        Overrides are field names (``epochs=2``), sections as mappings
        (``model={"width": 0.125}``) or dotted keys (``**{"data.batch_size": 4}``),
        resolved by :func:`xray_seg.core.config.load_config` like ``--set``.

        Example:
            >>> cfg = TrainConfig.from_preset("demo_cpu", epochs=1, model={"width": 0.125})
            >>> cfg.model.width, cfg.epochs
            (0.125, 1)
        """
        return load_config(cls, name, nest_overrides(overrides.items()))
