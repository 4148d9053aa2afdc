"""The ``vm`` module's VMSpec options agree with ``virtabstract.spec_schema()``, field by field.

No Ansible run needed: module_utils/spec.py and the doc fragment are plain Python.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import virtabstract

yaml = pytest.importorskip("yaml")

PLUGINS = Path(__file__).resolve().parents[2] / "ansible" / "plugins"


def _load(relative: str) -> ModuleType:
    path = PLUGINS / relative
    spec = importlib.util.spec_from_file_location(f"_va_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _ansible_type(schema: dict[str, Any]) -> str:
    """The Ansible option type a JSON Schema property maps to."""
    if "oneOf" in schema or "anyOf" in schema:
        return "raw"
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next(k for k in kind if k != "null")
    if kind is None and "enum" in schema:
        return "str"
    return {"integer": "int", "boolean": "bool", "array": "list", "string": "str", "object": "dict"}[kind]


def test_options_match_the_schema() -> None:
    options = _load("module_utils/spec.py").spec_argument_spec()
    schema = virtabstract.spec_schema()["properties"]
    assert set(options) == set(schema) - {"name"}
    for field, option in options.items():
        assert option["type"] == _ansible_type(schema[field]), field
        assert "default" not in option, f"{field}: an unset option must mean 'not managed'"
        assert "choices" not in option, f"{field}: the library validates values (one set of rules)"
    for field in ("disks", "nics"):
        items = schema[field]["items"]["properties"]
        suboptions = options[field]["options"]
        assert set(suboptions) == set(items), field
        for key, sub in suboptions.items():
            assert sub["type"] == _ansible_type(items[key]), f"{field}.{key}"


def test_fragment_documents_every_option() -> None:
    options = _load("module_utils/spec.py").spec_argument_spec()
    documented = yaml.safe_load(_load("doc_fragments/vm_spec.py").ModuleDocFragment.DOCUMENTATION)["options"]
    assert set(documented) == set(options)
    for field, option in options.items():
        assert documented[field]["type"] == option["type"], field
        if "options" in option:
            assert set(documented[field]["suboptions"]) == set(option["options"]), field


def test_reconfigurable_fields_are_the_librarys() -> None:
    from virtabstract._backend import RECONFIGURABLE_FIELDS

    reconfigurable = _load("module_utils/spec.py").RECONFIGURABLE
    assert {"memory_mib" if f == "memory" else f for f in reconfigurable} == set(RECONFIGURABLE_FIELDS)
