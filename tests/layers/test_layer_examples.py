"""Every public layer documents itself with a runnable ``Example:`` (issue 15, part 6).

The examples are doctests: each builds the layer on a tiny input and shows the output
shape, so this test both checks that every public class of ``xray_seg.layers`` has one
and runs them (a few seconds on CPU).
"""

import doctest
import importlib
import inspect
import pkgutil

import pytest

keras = pytest.importorskip("keras")

import xray_seg.layers  # noqa: E402

MODULES = [importlib.import_module(m.name) for m in pkgutil.iter_modules(xray_seg.layers.__path__, "xray_seg.layers.")]
PUBLIC_CLASSES = [
    (module.__name__, name, obj)
    for module in MODULES
    for name, obj in vars(module).items()
    if inspect.isclass(obj) and obj.__module__ == module.__name__ and not name.startswith("_")
]


def test_there_are_layers_to_check():
    assert len(PUBLIC_CLASSES) >= 20


@pytest.mark.parametrize(("module", "name", "cls"), PUBLIC_CLASSES, ids=[f"{m}.{n}" for m, n, _ in PUBLIC_CLASSES])
def test_public_layer_has_example(module, name, cls):
    assert "Example:" in (cls.__doc__ or ""), f"{module}.{name}: add an `Example:` block to the class docstring"


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} example lines of {module.__name__} failed"
