"""Import a host script (a file without .py under hostscripts/) as a module, for unit tests."""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

HOSTSCRIPTS_DIR = Path(__file__).resolve().parents[2] / "hostscripts"


def load_host_script(path: Path, module_name: str) -> ModuleType:
    """The script at `path` as module `module_name` (imported once per test session)."""
    if module_name in sys.modules:
        return sys.modules[module_name]
    loader = SourceFileLoader(module_name, str(path))
    spec = importlib.util.spec_from_loader(module_name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses look their module up while the class is built
    loader.exec_module(module)
    return module
