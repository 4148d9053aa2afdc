"""Generate the CLI reference (Markdown) from the command definitions.

The docs build inserts :func:`render_reference_markdown` at the
``<!-- cli-reference -->`` marker of ``docs/cli.md``; a test checks that every
command of the parser appears in it, so the page cannot drift from the code.
"""

from __future__ import annotations

from ._spec_tree import COMMANDS, ENVIRONMENT, EXIT_CODES, GLOBAL_ARGS, Arg, Cmd, iter_commands

__all__ = ["render_reference_markdown"]

PROG = "virtabstract"


def _metavar(spec: Arg) -> str:
    if "metavar" in spec.kwargs:
        return str(spec.kwargs["metavar"])
    if "choices" in spec.kwargs:
        return "{" + ",".join(str(c) for c in spec.kwargs["choices"]) + "}"
    return spec.dest.upper()


def _usage_word(spec: Arg, trailing: str = "") -> str:
    meta = _metavar(spec)
    nargs = spec.kwargs.get("nargs")
    if trailing and spec.dest == trailing:
        return f"-- {meta} [{meta} ...]"
    if nargs == "+":
        return f"{meta} [{meta} ...]"
    if nargs == "*":
        return f"[{meta} ...]"
    return meta


def _names(spec: Arg) -> str:
    if spec.positional:
        return f"`{_metavar(spec)}`"
    shown = ", ".join(f"`{n}`" for n in spec.names)
    if spec.takes_value:
        shown += f" `{_metavar(spec)}`"
    return shown


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _arg_table(args: tuple[Arg, ...]) -> list[str]:
    lines = ["| argument | description |", "| --- | --- |"]
    for spec in args:
        help_text = str(spec.kwargs.get("help", ""))
        if spec.kwargs.get("action") == "append":
            help_text += " (repeatable)" if "repeatable" not in help_text else ""
        lines.append(f"| {_names(spec)} | {_cell(help_text)} |")
    return lines


def _usage(path: tuple[str, ...], cmd: Cmd) -> str:
    words = [PROG, *path]
    if cmd.children:
        words.append("COMMAND")
    else:
        words.append("[options]")
        words += [_usage_word(a, cmd.trailing) for a in cmd.args if a.positional]
    return " ".join(words)


def render_reference_markdown() -> str:
    """The full command reference as Markdown: usage, arguments, ``--json`` keys, examples, exit codes."""
    out: list[str] = ["## Command reference", ""]
    out += ["### Global options", ""]
    out.append("Accepted before or after the command (`virtabstract --json vm list` = `virtabstract vm list --json`).")
    out.append("")
    out += _arg_table(GLOBAL_ARGS)
    out += ["", "Also `--version` and `-h/--help` (on every command).", ""]
    for path, cmd in iter_commands(COMMANDS):
        if cmd.hidden:
            continue
        level = "#" * min(3 + len(path), 6)
        out += [f"{level} `{PROG} {' '.join(path)}`", ""]
        description = cmd.description or cmd.help[0].upper() + cmd.help[1:] + "."
        out += [description, "", "```text", _usage(path, cmd), "```", ""]
        if cmd.children:
            visible = [c for c in cmd.children if not c.hidden]
            out += ["| command | what it does |", "| --- | --- |"]
            out += [f"| `{c.name}` | {_cell(c.help)} |" for c in visible]
            out.append("")
            continue
        if cmd.args:
            out += _arg_table(cmd.args)
            out.append("")
        if cmd.json:
            out += [f"`--json` prints {_cell(cmd.json)}.", ""]
        if cmd.examples:
            out += ["Examples:", "", "```sh", *cmd.examples, "```", ""]
    out += ["### Exit codes", "", "| code | name | meaning |", "| --- | --- | --- |"]
    out += [f"| {code} | {name} | {_cell(meaning)} |" for code, name, meaning in EXIT_CODES]
    out += ["", "### Environment variables", "", "| variable | meaning |", "| --- | --- |"]
    out += [f"| `{name}` | {_cell(meaning)} |" for name, meaning in ENVIRONMENT]
    out.append("")
    return "\n".join(out)
