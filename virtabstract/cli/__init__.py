"""The ``virtabstract`` command-line tool: every operation from a terminal, on any backend.

Run ``virtabstract --help`` (or ``python -m virtabstract --help``). The command tree is
declared once in :mod:`virtabstract.cli._spec_tree`; it builds the argparse parser,
drives shell completion and generates the reference page
(:func:`render_reference_markdown`).

``import virtabstract`` does not import this package, and importing it imports
neither rich nor any backend.
"""

from __future__ import annotations

from ._app import main
from ._reference import render_reference_markdown
from ._spec_tree import EXIT_CODES

__all__ = ["EXIT_CODES", "main", "render_reference_markdown"]
