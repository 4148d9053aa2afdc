"""The test tree stays collectable: pytest's default import mode needs unique module basenames."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique():
    names = Counter(
        p.name
        for p in TESTS.rglob("test_*.py")
        if not (p.parent / "__init__.py").exists() and "__pycache__" not in p.parts
    )
    assert not [n for n, c in names.items() if c > 1]
