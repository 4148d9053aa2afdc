"""Generated documentation: the support matrix, the guest-OS catalog and the CLI reference.

Pages hold a placeholder comment; this extension replaces it at build time with
markdown generated from the code, so those tables can never drift from it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def support_matrix_markdown() -> str:
    """Markdown table of every installed backend's declared capabilities."""
    from virtabstract import Capability, PluginManager

    manager = PluginManager(autoload=True).load()
    columns: list[tuple[str, Any]] = []
    for entry in manager.backends.entries:
        try:
            cls = entry.load()
        except Exception as exc:  # noqa: BLE001 - a missing backend is reported in the page
            columns.append((entry.schemes[0], exc))
            continue
        for label, variant in cls.variants().items():
            name = cls.name or entry.schemes[0]
            columns.append((f"{name} ({label})" if label else name, variant))
    header = "| capability | " + " | ".join(name for name, _ in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    lines = [header, rule]
    for cap in Capability:
        cells = []
        for _, cls in columns:
            if isinstance(cls, Exception):
                cells.append("?")
            else:
                cells.append("yes" if cap in cls.capabilities else "—")
        lines.append(f"| `{cap.value}` | " + " | ".join(cells) + " |")
    # Declared behaviour, not a capability: such a backend refuses a taken snapshot name even with allow_duplicate.
    unique = [
        "?" if isinstance(cls, Exception) else ("yes" if cls.unique_snapshot_names else "—") for _, cls in columns
    ]
    lines.append("| *snapshot names unique per VM* (`unique_snapshot_names`) | " + " | ".join(unique) + " |")
    schemes = ["", "URL schemes served:", ""]
    for entry in manager.backends.entries:
        schemes.append(f"- {', '.join(f'`{s}://`' for s in entry.schemes)} — plugin `{entry.plugin}`")
    return "\n".join(lines + schemes) + "\n"


def catalog_markdown() -> str:
    """The guest-OS catalog table."""
    from virtabstract._catalog import render_catalog_markdown

    return render_catalog_markdown()


def cli_markdown() -> str:
    """The CLI reference, generated from the command definitions."""
    try:
        from virtabstract.cli import render_reference_markdown
    except ImportError:
        return "_The CLI is not installed in this build._\n"
    return render_reference_markdown()


GENERATORS: dict[str, Callable[[], str]] = {
    "<!-- support-matrix -->": support_matrix_markdown,
    "<!-- catalog-table -->": catalog_markdown,
    "<!-- cli-reference -->": cli_markdown,
}


def _fill(app: Any, docname: str, source: list[str]) -> None:
    text = source[0]
    for marker, generate in GENERATORS.items():
        if marker in text:
            text = text.replace(marker, generate())
    source[0] = text


def setup(app: Any) -> dict[str, Any]:
    """Register the source-read handler."""
    app.connect("source-read", _fill)
    return {"parallel_read_safe": True, "version": "1"}
