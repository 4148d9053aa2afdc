"""The test tree stays collectable: pytest's default import mode needs unique module basenames."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique():
    modules = [p for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts]
    names = Counter(p.name for p in modules if not (p.parent / "__init__.py").exists())
    assert not [n for n, c in names.items() if c > 1]
