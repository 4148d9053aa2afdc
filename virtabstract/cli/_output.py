"""The CLI's output layer: the only place that writes to stdout/stderr.

* Results go to **stdout**: JSON under ``--json``, otherwise tables and lines for people.
* Diagnostics (progress, warnings, errors) go to **stderr**.
* rich is optional and imported only when a table is drawn on a terminal or a
  progress bar is shown; without it, plain aligned columns and plain status lines.
* Progress appears only when stderr is a terminal (or ``VIRTABSTRACT_PROGRESS=always``),
  never under ``--quiet``, and never on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["Output", "Progress", "redact"]

ENV_PROGRESS = "VIRTABSTRACT_PROGRESS"
"""``auto`` (default: only when stderr is a terminal), ``always`` or ``never``."""


def redact(text: str, secrets: Sequence[str]) -> str:
    """Replace every occurrence of each (non-trivial) secret in *text* with ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


class Progress:
    """A progress indicator on stderr: a rich bar/spinner, plain status lines, or nothing."""

    def __init__(self, output: Output, description: str, total: int | None) -> None:
        self._output = output
        self._description = description
        self._total = total
        self._done = 0
        self._lock = threading.Lock()
        self._rich: Any = None
        self._task: Any = None
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        mode = self._output.progress_mode
        if mode == "off":
            return self
        if mode in ("rich", "rich-forced"):
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )
            from rich.progress import Progress as RichProgress

            console = Console(file=self._output.stderr, force_terminal=mode == "rich-forced" or None)
            columns: list[Any] = [SpinnerColumn(), TextColumn("{task.description}")]
            if self._total is not None:
                columns += [BarColumn(), MofNCompleteColumn()]
            columns.append(TimeElapsedColumn())
            self._rich = RichProgress(*columns, console=console, transient=True)
            self._rich.__enter__()
            self._task = self._rich.add_task(self._description, total=self._total)
        else:
            self._output.stderr.write(f"{self._description}…\n")
            self._output.stderr.flush()
        return self

    def advance(self, label: str = "") -> None:
        """Count one unit of work as done (thread-safe)."""
        with self._lock:
            self._done += 1
            if self._rich is not None:
                self._rich.advance(self._task)
            elif self._output.progress_mode == "plain" and self._total is not None:
                suffix = f" {label}" if label else ""
                self._output.stderr.write(f"  [{self._done}/{self._total}]{suffix}\n")
                self._output.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.__exit__(None, None, None)
            self._rich = None


class Output:
    """Writes results and diagnostics according to ``--json`` / ``--quiet`` / ``--debug``.

    :param json_mode: results as JSON on stdout.
    :param quiet: no progress, no confirmations; listings print names only.
    :param debug: tracebacks on errors.
    """

    def __init__(
        self,
        *,
        json_mode: bool = False,
        quiet: bool = False,
        debug: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        progress: str | None = None,
    ) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.debug = debug
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr
        self.secrets: list[str] = []
        """Values scrubbed from every diagnostic (errors, tracebacks, warnings)."""
        self._progress_setting = (progress or os.environ.get(ENV_PROGRESS, "auto")).strip().lower()
        self._progress_mode: str | None = None

    # -- results on stdout ------------------------------------------------------------

    def write(self, text: str) -> None:
        """Write *text* to stdout as is (guest output, file contents, schemas)."""
        self.stdout.write(text)

    def write_bytes(self, data: bytes) -> None:
        """Write raw bytes to stdout (``guest cp VM:/file -``)."""
        self.stdout.flush()
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:  # pragma: no cover - a text-only stream (tests with StringIO)
            self.stdout.write(data.decode("utf-8", "replace"))

    def data(self, obj: Any) -> None:
        """Write *obj* as pretty JSON on stdout (the ``--json`` result)."""
        self.stdout.write(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")

    def line(self, text: str = "") -> None:
        """A line of human output on stdout."""
        self.stdout.write(text + "\n")

    def confirm(self, text: str) -> None:
        """A confirmation such as ``web1: started`` (stdout; silent under --quiet or --json)."""
        if not self.quiet and not self.json_mode:
            self.stdout.write(text + "\n")

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None) -> None:
        """A table for people: rich on a terminal, plain aligned columns otherwise."""
        cells = [["" if v is None else str(v) for v in row] for row in rows]
        if self._stdout_is_tty() and _has_rich() and not os.environ.get("NO_COLOR"):
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title, box=None, header_style="bold", pad_edge=False, collapse_padding=True)
            for column in columns:
                table.add_column(column, no_wrap=True, overflow="ellipsis")
            for row in cells:
                table.add_row(*row)
            Console(file=self.stdout).print(table)
            return
        if title:
            self.stdout.write(title + "\n")
        self.stdout.write(format_plain_table(columns, cells))

    def fields(self, pairs: Sequence[tuple[str, Any]]) -> None:
        """A ``key: value`` listing for one record."""
        width = max((len(k) for k, _ in pairs), default=0)
        for key, value in pairs:
            shown = "" if value is None else str(value)
            self.stdout.write(f"{key + ':':<{width + 1}} {shown}".rstrip() + "\n")

    # -- diagnostics on stderr ---------------------------------------------------------

    def info(self, text: str) -> None:
        """A status message on stderr (silent under --quiet)."""
        if not self.quiet:
            self.stderr.write(redact(text, self.secrets) + "\n")

    def warn(self, text: str) -> None:
        """``warning: …`` on stderr."""
        self.stderr.write("warning: " + redact(text, self.secrets) + "\n")

    def error(self, message: str, hint: str = "") -> None:
        """``error: <message>`` and an optional ``hint: …`` line on stderr."""
        first = " ".join(redact(message, self.secrets).split("\n")[0].split()) or "unknown error"
        self.stderr.write(f"error: {first}\n")
        if hint:
            self.stderr.write(f"hint: {redact(hint, self.secrets)}\n")

    def traceback(self, exc: BaseException) -> None:
        """The full traceback (only called under --debug), with known secrets scrubbed."""
        import traceback

        text = "".join(traceback.format_exception(exc))
        self.stderr.write(redact(text, self.secrets))

    # -- progress ----------------------------------------------------------------------

    @property
    def progress_mode(self) -> str:
        """``off``, ``plain``, ``rich`` or ``rich-forced`` (decided once)."""
        if self._progress_mode is None:
            self._progress_mode = self._decide_progress()
        return self._progress_mode

    def _decide_progress(self) -> str:
        setting = self._progress_setting
        if self.quiet or setting == "never":
            return "off"
        if setting == "always":
            return "rich-forced" if _has_rich() else "plain"
        isatty = getattr(self.stderr, "isatty", None)
        if not (callable(isatty) and isatty()):
            return "off"
        return "rich" if _has_rich() else "plain"

    @contextmanager
    def progress(self, description: str, total: int | None = None) -> Iterator[Progress]:
        """Show progress for a long operation on stderr (if at all): ``with out.progress(…) as p: p.advance()``."""
        with Progress(self, description, total) as bar:
            yield bar

    def _stdout_is_tty(self) -> bool:
        isatty = getattr(self.stdout, "isatty", None)
        return bool(callable(isatty) and isatty())


def format_plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned columns separated by two spaces; the last column is not padded."""
    widths = [len(c) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(columns), *[list(r) for r in rows]]:
        padded = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines) + "\n"
