"""The public surface: __all__ lists exactly what each module defines for users."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import irkit

# Every module of the package, subpackages included (the lab and the drill too: they are behind an extra,
# not private).
PUBLIC_MODULES = sorted(m.name.removeprefix("irkit.") for m in pkgutil.walk_packages(irkit.__path__, "irkit.")
                        if not any(part.startswith("_") for part in m.name.split(".")))


def test_every_top_level_module_and_room_is_reachable_from_the_package():
    rooms = {name.split(".")[0] for name in PUBLIC_MODULES}
    assert rooms <= set(irkit.__all__), rooms - set(irkit.__all__)
    for name in irkit.__all__:
        assert getattr(irkit, name) is not None


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_module_all_is_complete_and_resolvable(name: str):
    module = importlib.import_module(f"irkit.{name}")
    if hasattr(module, "__path__") and not hasattr(module, "__all__"):
        return  # a package whose __init__ only documents the room
    exported = set(getattr(module, "__all__", ()))
    assert exported, f"irkit.{name} has no __all__"
    for symbol in exported:
        assert hasattr(module, symbol), f"irkit.{name}.__all__ names missing {symbol}"
    defined = {n for n, obj in vars(module).items()
               if not n.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
               and getattr(obj, "__module__", None) == module.__name__}
    assert defined <= exported, f"irkit.{name} defines public names not in __all__: {defined - exported}"
