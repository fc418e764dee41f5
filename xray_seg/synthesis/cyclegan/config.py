"""Settings of a CycleGAN run; the defaults are those of Zhu et al. 2017 (section 4, appendix 7).

Domain A is the source (photos of items), domain B the target (X-ray scans); the
generator ``G_AB`` is the one ``xray-seg cyclegan translate`` applies (paper 1, §4.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from xray_seg.core.errors import ConfigError


@dataclass
class CycleGANConfig:
    """A CycleGAN training run.

    Args:
        a_dir: folder of domain-A images (photos), unpaired with ``b_dir``.
        b_dir: folder of domain-B images (X-ray scans).
        size: side of the square training crops.
        load_size: shorter side images are resized to before cropping; 0 means
            ``round(size * 286 / 256)`` (the paper's 286 -> 256).
        epochs: total epochs; the learning rate is constant for
            ``epochs - decay_epochs``, then decays linearly towards 0.
        decay_epochs: epochs of linear decay; -1 means half of ``epochs`` (paper: 100 + 100).
        steps_per_epoch: images per domain and epoch; 0 means the larger folder's size.
        batch_size: images per step (paper: 1).
        ngf: generator width (paper: 64).
        ndf: discriminator width (paper: 64).
        num_blocks: generator residual blocks; 0 means 9 for ``size`` >= 256, else 6 (paper).
        disc_layers: PatchGAN stride-2 layers; 3 gives the 70x70 patches of the paper.
        lr: Adam learning rate (paper: 2e-4).
        beta_1: Adam beta 1 (paper: 0.5).
        lambda_cycle: weight of the cycle-consistency L1 loss (paper: 10).
        lambda_identity: weight of the identity loss relative to ``lambda_cycle``
            (paper: 0.5, i.e. 5).
        pool_size: image pool of past fakes shown to the discriminators (paper: 50).
        seed: seed of weights, crops, flips and the pool.
    """

    a_dir: str = ""
    b_dir: str = ""
    size: int = 256
    load_size: int = 0
    epochs: int = 200
    decay_epochs: int = -1
    steps_per_epoch: int = 0
    batch_size: int = 1
    ngf: int = 64
    ndf: int = 64
    num_blocks: int = 0
    disc_layers: int = 3
    lr: float = 2e-4
    beta_1: float = 0.5
    lambda_cycle: float = 10.0
    lambda_identity: float = 0.5
    pool_size: int = 50
    seed: int = 0

    def resolved(self) -> CycleGANConfig:
        """A copy with the automatic settings (0 / -1) filled in, after validation."""
        from dataclasses import replace

        self.validate()
        return replace(
            self,
            load_size=self.load_size or round(self.size * 286 / 256),
            decay_epochs=self.epochs // 2 if self.decay_epochs < 0 else self.decay_epochs,
            num_blocks=self.num_blocks or (9 if self.size >= 256 else 6),
        )

    def validate(self) -> CycleGANConfig:
        """Raise :class:`ConfigError` for a setting out of range; return self."""
        checks = [
            ("size", self.size >= 16 and self.size % 4 == 0, "use a multiple of 4 of at least 16, e.g. --size 128"),
            ("load_size", self.load_size == 0 or self.load_size >= self.size, "use 0 (automatic) or at least --size"),
            ("epochs", self.epochs >= 1, "use e.g. --epochs 200"),
            ("decay_epochs", -1 <= self.decay_epochs <= self.epochs, "use -1 (half) or 0..epochs"),
            ("steps_per_epoch", self.steps_per_epoch >= 0, "use 0 (the larger folder) or a positive count"),
            ("batch_size", self.batch_size >= 1, "use e.g. 1"),
            ("ngf", self.ngf >= 1, "use e.g. 64"),
            ("ndf", self.ndf >= 1, "use e.g. 64"),
            ("num_blocks", self.num_blocks >= 0, "use 0 (automatic) or a positive count"),
            ("disc_layers", self.disc_layers >= 1, "use e.g. 3"),
            ("lr", self.lr > 0, "use e.g. 2e-4"),
            ("pool_size", self.pool_size >= 0, "use e.g. 50 (0 disables the pool)"),
        ]
        for key, ok, fix in checks:
            if not ok:
                raise ConfigError(f"cyclegan setting {key}={getattr(self, key)!r} is out of range", fix=fix)
        return self

    def lr_factor(self, epoch: int) -> float:
        """Learning-rate multiplier for 0-based ``epoch``: 1, then linear decay (the authors' rule)."""
        constant = self.epochs - self.decay_epochs
        return 1.0 - max(0, epoch + 1 - constant) / float(self.decay_epochs + 1)
