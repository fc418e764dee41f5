"""One tiny export with every format (SavedModel, optimised SavedModel, TFLite, ONNX, OpenVINO),
shared by the engine and optimised-SavedModel tests of this folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

STATION_CLASSES = ["_background_", "gun", "knife"]
STATION_TILE = (64, 64)


def _station_run(run_dir: Path) -> Path:
    """A run folder with an untrained CWF-DeepLabv3+ at width 0.125 whose classifier is scaled
    up 8x, so the classes are far apart (an untrained head is nearly uniform: its argmax is a
    tie, decided by float noise, on a few pixels in ten thousand)."""
    from xray_seg.core.config import save_config
    from xray_seg.models.registry import build_model
    from xray_seg.training.config import TrainConfig

    run_dir.mkdir(parents=True)
    model = build_model("cwf_deeplabv3plus", len(STATION_CLASSES), (*STATION_TILE, 3), width=0.125)
    head = [layer for layer in model.layers if layer.weights][-1]
    head.set_weights([np.asarray(w) * 8.0 for w in head.get_weights()])
    model.save(run_dir / "best_model.keras")
    (run_dir / "class_names.txt").write_text("\n".join(STATION_CLASSES) + "\n")
    cfg = TrainConfig()
    cfg.model.width = 0.125
    cfg.data.image_size = STATION_TILE
    save_config(cfg, run_dir / "config.yaml")
    return run_dir


@pytest.fixture(scope="session")
def station_export(tmp_path_factory):
    """``(run, out, result)``: the run exported once with every format the machine can write."""
    pytest.importorskip("tensorflow")
    from xray_seg.serving.exporter import export_model
    from xray_seg.serving.formats import FORMATS, missing_packages

    formats = [f for f in FORMATS if not missing_packages([f])]
    base = tmp_path_factory.mktemp("station")
    run = _station_run(base / "run")
    result = export_model(run, base / "out", formats=formats, tflite_runs=1, progress=False)
    return run, base / "out", result


@pytest.fixture(scope="session")
def keras_reference(station_export):
    """``reference(image) -> probabilities [H, W, K]``: the geometry rule in numpy on the Keras model."""
    import keras

    from xray_seg.inference.geometry import ScanGeometry
    from xray_seg.inference.tta import predict_probabilities
    from xray_seg.models.registry import import_custom_objects

    import_custom_objects()
    model = keras.models.load_model(station_export[0] / "best_model.keras", compile=False)
    geometry = ScanGeometry(tile=STATION_TILE)
    return lambda image: predict_probabilities(model, image, geometry=geometry)
