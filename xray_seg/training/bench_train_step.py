"""The training step on CPU, images/s per setting: ``xray-seg bench --suite train-step``.

Times the real training step of a registered model (the demo's by default: CWF-DeepLabv3+ at
width 0.25, 256x256, batch 8, Adam, OHEM cross-entropy as in ``presets/demo_cpu.yaml``) on a
fixed in-memory batch: the model + loss + optimizer cost, without the input pipeline. Each
setting runs in its own child process (a mixed-precision policy is global), compiles with
``warmup`` untimed steps, then times ``runs`` blocks of ``steps`` steps; printed: the median
images/s, min and max, and the ratio to the first row.

Settings: ``fp32``, ``bf16`` (``mixed_bfloat16``: fast on CPUs with AVX512-BF16/AMX through
oneDNN), ``xla`` (``jit_compile``), ``bf16+xla``. ``bn``: ``keras`` times Keras's unfused batch
norm instead of :class:`~xray_seg.layers.norm.BatchNorm`'s fused kernel (``both``: both).
``presets`` time each preset's own network, size, batch and loss instead. ``isa`` caps oneDNN
(``ONEDNN_MAX_CPU_ISA``, e.g. ``avx2``: on an AVX-512/AMX Xeon it approximates the kernels an
AVX2-only CPU runs, though not that CPU's clock or caches).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from xray_seg.core.config import load_config
from xray_seg.evaluation.timing import cpu_line, time_calls
from xray_seg.layers.norm import BatchNorm
from xray_seg.models.registry import build_model
from xray_seg.training.config import TrainConfig
from xray_seg.training.losses import OhemCrossEntropy, SegmentationCrossEntropy, loss_from_config

SETTINGS = {
    "fp32": ("", False),
    "bf16": ("mixed_bfloat16", False),
    "xla": ("", True),
    "bf16+xla": ("mixed_bfloat16", True),
}


@dataclass
class TrainStepSettings:
    settings: list = field(default_factory=lambda: ["fp32", "bf16"])
    model: str = "cwf_deeplabv3plus"
    width: float = 0.25
    size: int = 256
    batch: int = 8
    num_classes: int = 6
    loss: str = "ohem"
    presets: list = field(default_factory=list)
    isa: list = field(default_factory=lambda: ["native"])
    bn: str = "fused"
    options: list = field(default_factory=list)  # KEY=YAML model builder options
    steps: int = 5
    runs: int = 5
    warmup: int = 3


def _model_and_loss(s: TrainStepSettings, preset: str):
    """(model, loss) of the flags or of ``preset``'s network, size, batch and loss (``s`` updated)."""
    options = {key: yaml.safe_load(value) for key, value in (o.split("=", 1) for o in s.options)}
    if preset:
        cfg = load_config(TrainConfig, preset, [])
        s.model, s.width, s.size, s.batch = (
            cfg.model.name,
            cfg.model.width,
            int(cfg.data.image_size[0]),
            cfg.data.batch_size,
        )
        loss = loss_from_config(cfg.loss)
    elif s.loss == "ohem":
        loss = OhemCrossEntropy(thresh=0.7, min_kept=s.batch * s.size * s.size // 16)
    else:
        loss = SegmentationCrossEntropy()
    return build_model(s.model, s.num_classes, (s.size, s.size, 3), width=s.width, **options), loss


def time_setting(s: TrainStepSettings, setting: str, preset: str) -> list[float]:
    """Images/s of each timed block of one ``setting[/bn]`` (in this process)."""
    import keras  # lazy: TensorFlow

    setting, _, bn = setting.partition("/")
    if bn == "keras":
        BatchNorm._can_fuse = lambda self, inputs, mask: False  # Keras's own implementation
    policy, jit = SETTINGS[setting]
    if policy:
        keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    model, loss = _model_and_loss(s, preset)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss, jit_compile=jit)
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (s.batch, s.size, s.size, 3)).astype("float32")
    labels = rng.integers(0, s.num_classes, (s.batch, s.size, s.size)).astype("int32")
    for _ in range(s.warmup):  # compile
        model.train_on_batch(images, labels)
    timing = time_calls(lambda i: [model.train_on_batch(images, labels) for _ in range(s.steps)], s.runs, 0)
    return [s.steps * s.batch / t for t in timing.seconds]


def _child(s: TrainStepSettings, setting: str, preset: str, isa: str) -> list[float] | str:
    env = dict(os.environ)
    if isa != "native":
        env["ONEDNN_MAX_CPU_ISA"] = isa.upper()
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    request = json.dumps({"settings": asdict(s), "setting": setting, "preset": preset})
    command = [sys.executable, "-m", __name__, request]
    child = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if child.returncode != 0:
        return child.stderr[-2000:]
    return json.loads(child.stdout.strip().splitlines()[-1])


def bench_train_step(s: TrainStepSettings) -> int:
    """Every preset x ISA x setting x batch norm in its own child process; one line each."""
    print(
        f"{s.model} width {s.width} {' '.join(s.options)}, {s.size}x{s.size}, batch {s.batch}, loss {s.loss}; "
        f"{s.runs} blocks of {s.steps} steps after {s.warmup} warm-up steps; CPU: {cpu_line()}"
    )
    base = None
    bns = ["fused", "keras"] if s.bn == "both" else [s.bn]
    for preset in s.presets or [""]:
        for isa in s.isa:
            for setting in (f"{name}/{bn}" for name in s.settings for bn in bns):
                label = " ".join(part for part in (preset, isa if len(s.isa) > 1 else "", setting) if part)
                rates = _child(s, setting, preset, isa)
                if isinstance(rates, str):
                    print(f"{label:>30}: failed\n{rates}")
                    continue
                median = statistics.median(rates)
                base = base or median
                print(
                    f"{label:>30}: median {median:6.2f} images/s (min {min(rates):.2f}, max {max(rates):.2f}), "
                    f"{median / base:.2f}x the first row",
                    flush=True,
                )
    return 0


if __name__ == "__main__":  # a child of bench_train_step: one JSON request
    request = json.loads(sys.argv[1])
    print(json.dumps(time_setting(TrainStepSettings(**request["settings"]), request["setting"], request["preset"])))
