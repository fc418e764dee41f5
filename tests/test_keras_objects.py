"""Plain Keras loads a run's ``best_model.keras`` in a fresh process: after ``import xray_seg``
(which imports neither Keras nor TensorFlow), and through ``xray_seg.custom_objects()``."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _model_files import save_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_run(tmp_path_factory.mktemp("plain") / "run") / "best_model.keras"


def run_fresh(code: str, model_file) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "MODEL": str(model_file)}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_load_model_works_after_import_xray_seg(model_file):
    out = run_fresh(
        """
        import os, sys
        import xray_seg
        assert "keras" not in sys.modules and "tensorflow" not in sys.modules
        import keras
        model = keras.saving.load_model(os.environ["MODEL"])
        print(model.output.shape[-1], type(model.get_layer("classifier")).__name__)
        """,
        model_file,
    )
    assert out.split() == ["6", "Conv2D"]


def test_load_model_works_with_custom_objects_alone(model_file):
    """The registry entries xray-seg's imports made are removed first, so only the dict passed
    in can resolve the layers; without it the same load fails as in plain Keras."""
    out = run_fresh(
        """
        import os
        import keras
        import xray_seg
        from keras.src.saving import object_registration

        objects = xray_seg.custom_objects()
        registry = object_registration.GLOBAL_CUSTOM_OBJECTS
        for name in [n for n in registry if n.startswith("xray_seg>")]:
            dict.pop(registry, name)
        try:
            keras.saving.load_model(os.environ["MODEL"])
        except TypeError:
            print("refused without")
        model = keras.saving.load_model(os.environ["MODEL"], custom_objects=objects)
        print(len(objects) > 10, model.output.shape[-1])
        """,
        model_file,
    )
    assert out.split() == ["refused", "without", "True", "6"]
