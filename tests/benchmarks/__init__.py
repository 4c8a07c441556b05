"""Tests of the benchmark scripts (what they report and the processes they leave, never
their figures)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_script(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module (they are scripts, not a package), registered
    under ``benchmarks_<name>`` so that its dataclasses can find their module."""
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}",
                                                  BENCHMARKS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
