"""Settings measured to slow CPU training (jit_compile, mixed_bfloat16 without AMX) print a warning line."""

from __future__ import annotations

from xray_seg.training.config import TrainConfig
from xray_seg.training.config_checks import cpu_speed_warnings

EPYC = {"model": "AMD EPYC", "vector": ["avx2", "avx512f", "avx512_bf16"], "cores": 2, "mhz": None}
XEON = {"model": "Intel Xeon", "vector": ["avx2", "avx512f", "avx512_bf16", "amx_tile"], "cores": 2, "mhz": None}


def test_default_settings_give_no_warning():
    assert cpu_speed_warnings(TrainConfig(), EPYC) == []


def test_jit_compile_warns_on_any_cpu_and_names_the_benchmark():
    for cpu in (EPYC, XEON):
        (line,) = cpu_speed_warnings(TrainConfig(jit_compile=True), cpu)
        assert "17x slower" in line and "xray-seg bench --suite train-step" in line


def test_bfloat16_warns_only_without_amx():
    cfg = TrainConfig(mixed_precision="mixed_bfloat16")
    (line,) = cpu_speed_warnings(cfg, EPYC)
    assert "1.7x slower" in line and "AMX" in line
    assert cpu_speed_warnings(cfg, XEON) == []
