"""Train a CycleGAN between two unpaired image folders; checkpoint and resume.

Zhu et al. 2017, section 4: Adam (lr 2e-4, beta_1 0.5), batch 1, learning rate
constant for the first half of the epochs and then linearly decayed to zero, the
generators updated first and then the discriminators on fakes drawn from a pool of
50. Paper 1 (§4.2) uses such a model to turn photos of prohibited items into X-ray
style.

A run folder holds::

    config.yaml                 the resolved CycleGANConfig
    history.csv                 mean losses, learning rate and seconds per epoch
    samples/epoch_NNN.png       A, A->B, A->B->A and B, B->A, B->A->B each epoch
    generator_a2b.keras         G_AB (photo -> X-ray), what `cyclegan translate` loads
    generator_b2a.keras         G_BA
    checkpoints/                weights of the four networks, both optimizers' state,
                                the two image pools and state.json (epochs done, the
                                numpy generator state); state.json is written last.

``--resume`` restores all of it, so the next epoch starts where the last one ended.
The training loop is TensorFlow (``tf.function`` steps); the networks are Keras 3.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from xray_seg.core.config import load_config, save_config
from xray_seg.core.errors import OutputExistsError, XraySegError
from xray_seg.core.fileio import atomic_path, prepare_output_dir, write_json_atomic, write_text_atomic
from xray_seg.core.layouts import RunLayout
from xray_seg.core.viz import save_grid
from xray_seg.synthesis.cyclegan.config import CycleGANConfig
from xray_seg.synthesis.cyclegan.images import ImagePool, UnpairedBatches, load_domain
from xray_seg.synthesis.cyclegan.losses import least_squares_discriminator, least_squares_generator, pixel_l1
from xray_seg.synthesis.cyclegan.models import build_discriminator, build_generator

GENERATOR_A2B = "generator_a2b.keras"
GENERATOR_B2A = "generator_b2a.keras"
NETWORKS = ("g_ab", "g_ba", "d_a", "d_b")
LOSS_NAMES = ("g_adv", "cycle", "identity", "g_total", "d_a", "d_b")


class CycleGANError(XraySegError):
    """A CycleGAN run folder that cannot be used (e.g. nothing to resume)."""


@dataclass
class CycleGANResult:
    run_dir: Path
    epochs_done: int
    history: list = field(default_factory=list)
    seconds: float = 0.0
    gan: CycleGAN | None = None


class CycleGAN:
    """The four networks, their optimizers and the two training steps.

    Args:
        config: a resolved :class:`CycleGANConfig`.
    """

    def __init__(self, config: CycleGANConfig):
        self.config = config
        keras.utils.set_random_seed(config.seed)
        self.g_ab = build_generator(config.ngf, config.num_blocks, name="g_ab")
        self.g_ba = build_generator(config.ngf, config.num_blocks, name="g_ba")
        self.d_a = build_discriminator(config.ndf, config.disc_layers, name="d_a")
        self.d_b = build_discriminator(config.ndf, config.disc_layers, name="d_b")
        self.opt_g = keras.optimizers.Adam(config.lr, beta_1=config.beta_1, beta_2=0.999, name="adam_g")
        self.opt_d = keras.optimizers.Adam(config.lr, beta_1=config.beta_1, beta_2=0.999, name="adam_d")
        self.opt_g.build(self.generator_variables)
        self.opt_d.build(self.discriminator_variables)
        self._generator_step = None
        self._discriminator_step = None

    @property
    def generator_variables(self):
        return self.g_ab.trainable_variables + self.g_ba.trainable_variables

    @property
    def discriminator_variables(self):
        return self.d_a.trainable_variables + self.d_b.trainable_variables

    def networks(self) -> dict:
        return {"g_ab": self.g_ab, "g_ba": self.g_ba, "d_a": self.d_a, "d_b": self.d_b}

    def set_learning_rate(self, lr: float) -> None:
        self.opt_g.learning_rate.assign(lr)
        self.opt_d.learning_rate.assign(lr)

    # ------------------------------------------------------------------ steps
    def generator_losses(self, real_a, real_b, training=True):
        """All generator terms for one batch: ``(losses dict, fake_a, fake_b)``."""
        cfg = self.config
        fake_b = self.g_ab(real_a, training=training)
        fake_a = self.g_ba(real_b, training=training)
        adversarial = least_squares_generator(self.d_b(fake_b, training=training)) + least_squares_generator(
            self.d_a(fake_a, training=training)
        )
        cycle = pixel_l1(self.g_ba(fake_b, training=training), real_a) + pixel_l1(
            self.g_ab(fake_a, training=training), real_b
        )
        identity = 0.0
        if cfg.lambda_identity > 0:
            identity = pixel_l1(self.g_ab(real_b, training=training), real_b) + pixel_l1(
                self.g_ba(real_a, training=training), real_a
            )
        total = adversarial + cfg.lambda_cycle * cycle + cfg.lambda_cycle * cfg.lambda_identity * identity
        return {"g_adv": adversarial, "cycle": cycle, "identity": identity, "g_total": total}, fake_a, fake_b

    def generator_step(self, real_a, real_b):
        """One Adam step of both generators; returns ``(losses, fake_a, fake_b)``."""
        if self._generator_step is None:
            import tensorflow as tf

            def step(a, b):
                with tf.GradientTape() as tape:
                    losses, fake_a, fake_b = self.generator_losses(a, b)
                variables = self.generator_variables
                grads = tape.gradient(losses["g_total"], variables)
                self.opt_g.apply_gradients(zip(grads, variables))
                return losses, fake_a, fake_b

            self._generator_step = tf.function(step)
        return self._generator_step(real_a, real_b)

    def discriminator_step(self, real_a, real_b, fake_a, fake_b):
        """One Adam step of both discriminators on real images and (pooled) fakes."""
        if self._discriminator_step is None:
            import tensorflow as tf

            def step(a, b, fa, fb):
                with tf.GradientTape() as tape:
                    loss_a = least_squares_discriminator(self.d_a(a, training=True), self.d_a(fa, training=True))
                    loss_b = least_squares_discriminator(self.d_b(b, training=True), self.d_b(fb, training=True))
                    total = loss_a + loss_b
                variables = self.discriminator_variables
                grads = tape.gradient(total, variables)
                self.opt_d.apply_gradients(zip(grads, variables))
                return {"d_a": loss_a, "d_b": loss_b}

            self._discriminator_step = tf.function(step)
        return self._discriminator_step(real_a, real_b, fake_a, fake_b)

    # ------------------------------------------------------------ checkpoints
    def save(self, ckpt_dir: Path) -> None:
        """Weights of the four networks and both optimizers' variables."""
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for key, model in self.networks().items():
            with atomic_path(ckpt_dir / f"{key}.weights.h5") as tmp:
                model.save_weights(tmp)
        arrays = {f"g{i}": np.asarray(v.numpy()) for i, v in enumerate(self.opt_g.variables)}
        arrays.update({f"d{i}": np.asarray(v.numpy()) for i, v in enumerate(self.opt_d.variables)})
        with atomic_path(ckpt_dir / "optimizers.npz") as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def load(self, ckpt_dir: Path) -> None:
        """Restore what :meth:`save` wrote."""
        for key, model in self.networks().items():
            model.load_weights(ckpt_dir / f"{key}.weights.h5")
        with np.load(ckpt_dir / "optimizers.npz") as data:
            for prefix, opt in (("g", self.opt_g), ("d", self.opt_d)):
                for i, v in enumerate(opt.variables):
                    v.assign(data[f"{prefix}{i}"])


# ------------------------------------------------------------------ run folder
def _rng_from_state(state: dict | None, seed: int) -> np.random.Generator:
    rng = np.random.default_rng(seed)
    if state is not None:
        rng.bit_generator.state = state
    return rng


def _save_pools(path: Path, pool_a: ImagePool, pool_b: ImagePool) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, a=pool_a.state(), b=pool_b.state())


def _load_pools(path: Path, pool_a: ImagePool, pool_b: ImagePool) -> None:
    with np.load(path) as data:
        pool_a.restore(data["a"])
        pool_b.restore(data["b"])


def read_run_state(run_dir: str | Path) -> dict:
    """``checkpoints/state.json`` of a run; CycleGANError if there is none."""
    path = RunLayout(run_dir).state_file
    if not path.is_file():
        raise CycleGANError("no CycleGAN checkpoint here", path=path, fix="start a new run without --resume")
    return json.loads(path.read_text(encoding="utf-8"))


def load_run_config(run_dir: str | Path) -> CycleGANConfig:
    """The resolved config a run saved."""
    path = RunLayout(run_dir).config_file
    if not path.is_file():
        raise CycleGANError(
            "not a CycleGAN run folder (no config.yaml)",
            path=run_dir,
            fix="give the --run-dir of `xray-seg cyclegan train`",
        )
    return load_config(CycleGANConfig, path)


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    y, x = (h - size) // 2, (w - size) // 2
    return image[y : y + size, x : x + size]


def write_sample_grid(path: Path, gan: CycleGAN, sample_a: np.ndarray, sample_b: np.ndarray, epoch: int) -> None:
    """A, A->B, A->B->A (top) and B, B->A, B->A->B (bottom) as a PNG."""

    def run(model, x):
        return model(x[None].astype(np.float32), training=False)

    def pixels(x):
        return np.clip(np.asarray(x)[0] + 0.5, 0, 255).astype(np.uint8)

    ab = run(gan.g_ab, sample_a)
    aba = gan.g_ba(ab, training=False)
    ba = run(gan.g_ba, sample_b)
    bab = gan.g_ab(ba, training=False)
    rows = [[sample_a, pixels(ab), pixels(aba)], [sample_b, pixels(ba), pixels(bab)]]
    save_grid(
        path,
        rows,
        col_titles=["input", "translated", "reconstructed"],
        row_titles=["A (photo)", "B (X-ray)"],
        title=f"CycleGAN epoch {epoch}",
    )


def _append_history(path: Path, row: dict) -> None:
    rows = []
    if path.is_file():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    lines = [",".join(row.keys())] + [",".join(str(r[k]) for k in row) for r in rows]
    write_text_atomic(path, "\n".join(lines) + "\n")


def _refuse_existing(run_dir: Path, force: bool) -> None:
    if not force and run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise OutputExistsError(
            "run folder already exists",
            path=run_dir,
            fix="pass --resume to continue it, --force to replace it, or another --run-dir",
        )


def prepare_run(config: CycleGANConfig, run_dir: str | Path, *, resume: bool, force: bool, epochs: int | None = None):
    """Create or reopen a run folder; return ``(resolved config, state or None)``."""
    run_dir = Path(run_dir)
    if resume:
        state = read_run_state(run_dir)
        config = load_run_config(run_dir)
        if epochs is not None:
            config.epochs = epochs
            config.decay_epochs = min(config.decay_epochs, epochs)
        return config.resolved(), state
    _refuse_existing(run_dir, force)
    prepare_output_dir(run_dir, force=force, inputs=[config.a_dir or None, config.b_dir or None], owner="cyclegan")
    config = config.resolved()
    save_config(config, RunLayout(run_dir).config_file)
    return config, None


def _train_epoch(gan: CycleGAN, batches: UnpairedBatches, pools, rng, steps: int, *, desc: str, progress: bool) -> dict:
    """One epoch of generator then discriminator steps (Zhu et al. 2017, section 4); the mean losses."""
    from tqdm import tqdm

    pool_a, pool_b = pools
    sums = dict.fromkeys(LOSS_NAMES, 0.0)
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress)
    for a, b in batches.epoch(rng):
        losses, fake_a, fake_b = gan.generator_step(a, b)
        pooled_a = pool_a.query(np.asarray(fake_a), rng)
        pooled_b = pool_b.query(np.asarray(fake_b), rng)
        losses = {**losses, **gan.discriminator_step(a, b, pooled_a, pooled_b)}
        for key in LOSS_NAMES:
            sums[key] += float(losses[key])
        bar.update()
        bar.set_postfix(
            cycle=f"{float(losses['cycle']):.3f}",
            g=f"{float(losses['g_adv']):.3f}",
            d=f"{float(losses['d_a'] + losses['d_b']):.3f}",
        )
    bar.close()
    return {key: sums[key] / steps for key in LOSS_NAMES}


def _save_epoch(run_dir: Path, gan: CycleGAN, pools, rng, history: list, samples) -> None:
    """After an epoch: history row, sample grid, both generators, then the checkpoint (state.json last)."""
    epoch = int(history[-1]["epoch"])
    ckpt_dir = run_dir / "checkpoints"
    _append_history(RunLayout(run_dir).history_csv, history[-1])
    write_sample_grid(run_dir / "samples" / f"epoch_{epoch:03d}.png", gan, *samples, epoch)
    for name, model in ((GENERATOR_A2B, gan.g_ab), (GENERATOR_B2A, gan.g_ba)):
        with atomic_path(run_dir / name) as tmp:
            model.save(tmp)
    gan.save(ckpt_dir)
    _save_pools(ckpt_dir / "pools.npz", *pools)
    write_json_atomic(
        ckpt_dir / "state.json",
        {"epochs_done": epoch, "rng_state": rng.bit_generator.state, "history": history},
    )


def _run_epoch(
    gan: CycleGAN, batches, pools, rng, steps: int, config, epoch: int, run_dir: Path, progress: bool
) -> dict:
    """Train epoch ``epoch`` (0-based) at its scheduled learning rate; its history row.

    CycleGANError when a loss became NaN or infinite.
    """
    lr = config.lr * config.lr_factor(epoch)
    gan.set_learning_rate(lr)
    started = time.perf_counter()
    desc = f"cyclegan {epoch + 1}/{config.epochs}"
    means = _train_epoch(gan, batches, pools, rng, steps, desc=desc, progress=progress)
    if not all(math.isfinite(v) for v in means.values()):
        raise CycleGANError(
            f"losses became NaN/inf in epoch {epoch + 1}",
            path=run_dir,
            fix="lower --lr, or --resume from the last good checkpoint",
        )
    return {"epoch": epoch + 1, **means, "lr": lr, "seconds": time.perf_counter() - started}


def train_cyclegan(
    config: CycleGANConfig,
    run_dir: str | Path,
    *,
    resume: bool = False,
    force: bool = False,
    epochs: int | None = None,
    stop_after_epochs: int | None = None,
    progress: bool = True,
    warn=None,
) -> CycleGANResult:
    """Train (or continue) a CycleGAN run; see the module docstring for what it writes.

    Args:
        config: settings (ignored with ``resume``: the run's saved config is used).
        run_dir: the run folder; refused if it exists unless ``resume`` or ``force``.
        resume: continue from ``checkpoints/``.
        force: replace an existing run folder.
        epochs: with ``resume``, a new total number of epochs.
        stop_after_epochs: end this session after so many epochs (schedule unchanged).
        progress: show a tqdm bar per epoch.
        warn: callable receiving warning lines (skipped images); default stderr.
    """
    run_dir = Path(run_dir)
    if resume:
        config, state = prepare_run(config, run_dir, resume=True, force=False, epochs=epochs)
    else:  # read the folders first: a bad folder must not leave a half-made run folder behind
        _refuse_existing(run_dir, force)
        config = config.resolved()
    images_a = load_domain(config.a_dir, config.load_size, name="A", warn=warn)
    images_b = load_domain(config.b_dir, config.load_size, name="B", warn=warn)
    if not resume:
        config, state = prepare_run(config, run_dir, resume=False, force=force)
    steps = config.steps_per_epoch or -(-max(len(images_a), len(images_b)) // config.batch_size)
    batches = UnpairedBatches(images_a, images_b, config.size, config.batch_size, steps)

    gan = CycleGAN(config)
    pool_a, pool_b = ImagePool(config.pool_size), ImagePool(config.pool_size)
    ckpt_dir = RunLayout(run_dir).checkpoints_dir
    history: list = []
    start_epoch = 0
    if state is not None:  # resume: networks, optimizers, pools and the history of the run
        gan.load(ckpt_dir)
        _load_pools(ckpt_dir / "pools.npz", pool_a, pool_b)
        start_epoch, history = int(state["epochs_done"]), list(state.get("history", []))
    rng = _rng_from_state(state and state["rng_state"], config.seed)
    sample_a = center_crop(images_a[0], config.size)
    sample_b = center_crop(images_b[0], config.size)

    last = config.epochs if stop_after_epochs is None else min(config.epochs, start_epoch + stop_after_epochs)
    session_start = time.perf_counter()
    for epoch in range(start_epoch, last):
        history.append(_run_epoch(gan, batches, (pool_a, pool_b), rng, steps, config, epoch, run_dir, progress))
        _save_epoch(run_dir, gan, (pool_a, pool_b), rng, history, (sample_a, sample_b))
    done = last if last > start_epoch else start_epoch
    return CycleGANResult(run_dir, done, history, time.perf_counter() - session_start, gan)
