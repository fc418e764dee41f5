"""Every registered model builder documents itself with a runnable ``Example:`` (issue 15, part 6).

The examples are doctests that build the model at a tiny width on 64x64 inputs and show
the output; the builders of the backbones and of the shared DeepLabv3+ head have one too.
"""

import doctest
import importlib
import inspect

import pytest

keras = pytest.importorskip("keras")

from xray_seg.models.registry import available_models, build_model, get_builder  # noqa: E402

BUILDERS = [(spec.name, get_builder(spec.name)) for spec in available_models()]
MODULES = sorted(
    {inspect.getmodule(builder).__name__ for _, builder in BUILDERS}
    | {
        "xray_seg.models.registry",
        "xray_seg.models.outputs",
        "xray_seg.models.deeplab_decoder",
        "xray_seg.models.backbones.csp_xception",
        "xray_seg.models.backbones.mobilenetv2",
        "xray_seg.models.backbones.resnet",
        "xray_seg.models.backbones.xception",
    }
)


@pytest.mark.parametrize(("name", "builder"), BUILDERS, ids=[name for name, _ in BUILDERS])
def test_registered_builder_has_example(name, builder):
    assert "Example:" in (builder.__doc__ or ""), (
        f"{name}: add an `Example:` block to {builder.__qualname__}'s docstring"
    )


def test_build_model_has_example():
    assert "Example:" in build_model.__doc__


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} example lines of {name} failed"
