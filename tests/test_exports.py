"""The public surface: __all__ lists exactly what each module defines for users."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import irkit

PUBLIC_MODULES = sorted(m.name for m in pkgutil.iter_modules(irkit.__path__) if not m.name.startswith("_")
                        and not m.ispkg)


def test_every_top_level_module_is_exported_by_the_package():
    assert set(PUBLIC_MODULES) <= set(irkit.__all__)


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_module_all_is_complete_and_resolvable(name: str):
    module = importlib.import_module(f"irkit.{name}")
    exported = set(getattr(module, "__all__", ()))
    assert exported, f"irkit.{name} has no __all__"
    for symbol in exported:
        assert hasattr(module, symbol), f"irkit.{name}.__all__ names missing {symbol}"
    defined = {n for n, obj in vars(module).items()
               if not n.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
               and getattr(obj, "__module__", None) == module.__name__}
    assert defined <= exported, f"irkit.{name} defines public names not in __all__: {defined - exported}"
