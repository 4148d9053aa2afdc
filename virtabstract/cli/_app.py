"""Parser construction, the entry point, error → exit-code mapping and the connection context."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from ._spec_tree import COMMANDS, ENVIRONMENT, EXIT_CODES, GLOBAL_ARGS, Arg, Cmd

if TYPE_CHECKING:
    from .. import Hypervisor
    from ._config import ConnectionSettings
    from ._output import Output

__all__ = ["Context", "build_parser", "exit_code_for", "main"]

PROG = "virtabstract"

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_INVALID_STATE = 4
EXIT_UNSUPPORTED = 5
EXIT_TIMEOUT = 6
EXIT_CONNECTION = 7
EXIT_EXISTS = 8
EXIT_INTERRUPTED = 130


class CLIUsageError(Exception):
    """A usage error detected by the CLI itself (exit code 2)."""

    def __init__(self, message: str, hint: str = "") -> None:
        self.hint = hint
        super().__init__(message)


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's error format: ``error: …`` plus a hint, exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"error: {message}\nhint: see '{self.prog} --help'\n")
        raise SystemExit(EXIT_USAGE)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps epilogs as written; a fixed width when ``VIRTABSTRACT_HELP_WIDTH`` is set (docs)."""

    def __init__(self, prog: str) -> None:
        width = int(os.environ["VIRTABSTRACT_HELP_WIDTH"]) if os.environ.get("VIRTABSTRACT_HELP_WIDTH") else None
        super().__init__(prog, max_help_position=30, width=width)


def _epilog_root() -> str:
    codes = "\n".join(f"  {code:<4} {name:<15} {meaning}" for code, name, meaning in EXIT_CODES)
    env = "\n".join(f"  {name:<22} {meaning}" for name, meaning in ENVIRONMENT)
    return (
        "exit codes:\n"
        f"{codes}\n\n"
        "environment:\n"
        f"{env}\n\n"
        f"Run '{PROG} COMMAND --help' for a command's options. Global options may also follow the command."
    )


def _epilog(cmd: Cmd) -> str | None:
    parts = []
    if cmd.examples:
        parts.append("examples:\n" + "\n".join(f"  {e}" for e in cmd.examples))
    if cmd.json:
        parts.append(f"--json prints: {cmd.json}")
    return "\n\n".join(parts) or None


def _add_arg(parser: argparse.ArgumentParser | Any, spec: Arg, *, suppress_default: bool = False) -> None:
    kwargs = dict(spec.kwargs)
    if suppress_default:
        kwargs["default"] = argparse.SUPPRESS
    parser.add_argument(*spec.names, **kwargs)


def _add_globals(parser: argparse.ArgumentParser, *, suppress_default: bool) -> None:
    group = parser.add_argument_group("global options")
    for spec in GLOBAL_ARGS:
        _add_arg(group, spec, suppress_default=suppress_default)


def _add_commands(parser: argparse.ArgumentParser, commands: Sequence[Cmd], path: tuple[str, ...]) -> None:
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", dest=f"_command_{len(path)}", required=True, parser_class=_Parser
    )
    for cmd in commands:
        extra: dict[str, Any] = {} if cmd.hidden else {"help": cmd.help}
        sub = subparsers.add_parser(
            cmd.name,
            description=cmd.description or cmd.help[0].upper() + cmd.help[1:] + ".",
            epilog=_epilog(cmd),
            formatter_class=_Formatter,
            **extra,
        )
        for spec in cmd.args:
            _add_arg(sub, spec)
        _add_globals(sub, suppress_default=True)
        if cmd.children:
            _add_commands(sub, cmd.children, (*path, cmd.name))
        else:
            sub.set_defaults(_handler=cmd.handler, _path=" ".join((*path, cmd.name)), _trailing=cmd.trailing)


def build_parser() -> argparse.ArgumentParser:
    """The complete argparse parser, built from :data:`~virtabstract.cli._spec_tree.COMMANDS`."""
    from .. import __version__

    parser = _Parser(
        prog=PROG,
        description="Manage virtual machines on KVM/libvirt, VMware ESXi/vCenter and VirtualBox with one tool.",
        epilog=_epilog_root(),
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_globals(parser, suppress_default=False)
    _add_commands(parser, COMMANDS, ())
    return parser


# -- errors --------------------------------------------------------------------------------


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code of an exception (see :data:`EXIT_CODES`)."""
    from .. import errors

    table: tuple[tuple[type[BaseException], int], ...] = (
        (CLIUsageError, EXIT_USAGE),
        (errors.UsageError, EXIT_USAGE),
        (errors.AmbiguousName, EXIT_USAGE),
        (errors.NotFound, EXIT_NOT_FOUND),
        (errors.InvalidState, EXIT_INVALID_STATE),
        (errors.UnsupportedOperation, EXIT_UNSUPPORTED),
        (errors.BackendUnavailable, EXIT_UNSUPPORTED),
        (errors.OperationTimeout, EXIT_TIMEOUT),
        (errors.HypervisorConnectionError, EXIT_CONNECTION),
        (errors.AlreadyExists, EXIT_EXISTS),
        (KeyboardInterrupt, EXIT_INTERRUPTED),
    )
    for cls, code in table:
        if isinstance(exc, cls):
            return code
    return EXIT_ERROR


def hint_for(exc: BaseException, path: str = "") -> str:
    """What to do next, for the one-line error message."""
    from .. import errors

    explicit = getattr(exc, "hint", "")
    if isinstance(exc, CLIUsageError) or (explicit and not isinstance(exc, errors.SpecError)):
        return str(explicit)
    if isinstance(exc, errors.SpecError):
        return f"see the spec format with '{PROG} spec schema'"
    if isinstance(exc, errors.InvalidURL):
        return "URLs look like qemu:///system, esx://host/?no_verify=1, vbox:///session, mock:///path/lab.json"
    if isinstance(exc, errors.VMNotFound):
        return f"list the VMs with '{PROG} vm list'"
    if isinstance(exc, errors.SnapshotNotFound):
        return f"list the snapshots with '{PROG} snapshot list VM'"
    if isinstance(exc, errors.GuestFileNotFound):
        return "check the path inside the guest"
    if isinstance(exc, errors.AmbiguousName):
        return "address it by one of the ids listed"
    if isinstance(exc, errors.InvalidState):
        return f"check the VM's state with '{PROG} vm show VM'"
    if isinstance(exc, errors.UnsupportedOperation):
        return f"see what each backend can do with '{PROG} backends'"
    if isinstance(exc, errors.BackendUnavailable):
        return f"see the installed backends with '{PROG} backends'"
    if isinstance(exc, errors.OperationTimeout):
        extra = ", or add --force" if path == "vm shutdown" else ""
        return f"try a longer --timeout{extra}"
    if isinstance(exc, errors.AuthenticationFailed):
        return "set VIRTABSTRACT_USERNAME/VIRTABSTRACT_PASSWORD, put them in a profile, or use --ask-password"
    if isinstance(exc, errors.HypervisorConnectionError):
        return "check the URL (--uri, VIRTABSTRACT_URI or the profile) and that the hypervisor is reachable"
    if isinstance(exc, errors.AlreadyExists):
        return "choose another name, or delete the existing one first"
    if isinstance(exc, errors.GuestAgentUnavailable):
        return "install and start the guest agent (qemu-guest-agent, VMware Tools or Guest Additions)"
    if isinstance(exc, errors.OperationVetoed):
        return "a policy plugin refused it; see its configuration"
    if isinstance(exc, errors.VirtAbstractError):
        return "run again with --debug for details"
    return "this is likely a bug: run again with --debug and report the traceback"


def error_dict(exc: BaseException) -> dict[str, Any]:
    """``{"type", "message", "exit_code"}`` for JSON results of bulk commands."""
    return {"type": type(exc).__name__, "message": str(exc), "exit_code": exit_code_for(exc)}


# -- connection context ---------------------------------------------------------------------


class Context:
    """What a command handler gets: parsed options, the output layer and (lazy) connections."""

    def __init__(self, args: argparse.Namespace, out: Output) -> None:
        self.args = args
        self.out = out
        self._settings: ConnectionSettings | None = None
        self._main: Hypervisor | None = None
        self._extra: list[Hypervisor] = []
        self._lock = threading.Lock()

    @property
    def path(self) -> str:
        """The command path, e.g. ``"vm start"``."""
        return str(getattr(self.args, "_path", ""))

    def settings(self) -> ConnectionSettings:
        """Resolve the URL and credentials once (may prompt for a password)."""
        if self._settings is not None:
            return self._settings
        from .._url import make_url
        from ._config import resolve_settings

        settings = resolve_settings(uri=getattr(self.args, "uri", None), profile=getattr(self.args, "profile", None))
        url = make_url(settings.uri)
        if url.password:
            self.out.secrets.append(url.password)
            if settings.source == "--uri":
                self.out.warn(
                    "a password in --uri is visible to other users in the process list; "
                    "use VIRTABSTRACT_PASSWORD, a profile or --ask-password instead"
                )
        if settings.password:
            self.out.secrets.append(settings.password)
        if getattr(self.args, "ask_password", False):
            settings.password = self._prompt_password(settings)
        self._settings = settings
        return settings

    def _prompt_password(self, settings: ConnectionSettings) -> str:
        if not sys.stdin.isatty():
            raise CLIUsageError(
                "cannot prompt for a password: standard input is not a terminal",
                "set VIRTABSTRACT_PASSWORD or put the password in a profile (chmod 600)",
            )
        import getpass

        from .._url import make_url

        url = make_url(settings.uri)
        who = settings.username or url.username
        target = f"{who}@{url.host or url.scheme}" if who else (url.host or str(url))
        password = getpass.getpass(f"Password for {target}: ")
        if password:
            self.out.secrets.append(password)
        return password

    def open_connection(self) -> Hypervisor:
        """Open a new connection with the resolved settings (the caller closes it)."""
        import virtabstract

        from .. import errors

        settings = self.settings()
        try:
            return virtabstract.connect(
                settings.uri, username=settings.username, password=settings.password, **settings.options
            )
        except errors.AuthenticationFailed:
            if settings.password is not None or not sys.stdin.isatty() or not sys.stderr.isatty():
                raise
            settings.password = self._prompt_password(settings)
            return virtabstract.connect(
                settings.uri, username=settings.username, password=settings.password, **settings.options
            )

    def connect(self) -> Hypervisor:
        """The command's shared connection (opened on first use, closed when the command ends)."""
        with self._lock:
            if self._main is None:
                self._main = self.open_connection()
            return self._main

    def worker_connection(self) -> Hypervisor:
        """A connection for a worker thread (opened per worker, closed with the context)."""
        hv = self.open_connection()
        with self._lock:
            self._extra.append(hv)
        return hv

    def close(self) -> None:
        """Close every connection this context opened."""
        with self._lock:
            connections = [c for c in (self._main, *self._extra) if c is not None]
            self._main = None
            self._extra = []
        for hv in connections:
            try:
                hv.close()
            except Exception:  # closing must not hide the command's result
                logging.getLogger("virtabstract.cli").debug("closing %s failed", hv, exc_info=True)


# -- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI with *argv* (default ``sys.argv[1:]``); return the exit code."""
    from ._output import Output

    parser = build_parser()
    words = list(sys.argv[1:] if argv is None else argv)
    tail: list[str] | None = None
    if "--" in words:  # everything after the first "--" belongs to the command (guest exec's argv)
        cut = words.index("--")
        words, tail = words[:cut], words[cut + 1 :]
    try:
        args = parser.parse_args(words)
        if tail is not None:
            if not getattr(args, "_trailing", ""):
                parser.error(f"'{args._path}' takes no arguments after --")
            setattr(args, args._trailing, [*getattr(args, args._trailing), *tail])
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    out = Output(json_mode=args.json, quiet=args.quiet, debug=args.debug)
    env_password = os.environ.get("VIRTABSTRACT_PASSWORD")
    if env_password:
        out.secrets.append(env_password)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="debug: %(name)s: %(message)s", stream=sys.stderr)
    ctx = Context(args, out)
    try:
        from . import _commands

        handler = getattr(_commands, args._handler)
        return int(handler(ctx, args))
    except KeyboardInterrupt:
        out.error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_broken_pipe()
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - every error becomes one line and an exit code
        if args.debug:
            out.traceback(exc)
        out.error(str(exc) or type(exc).__name__, hint_for(exc, ctx.path))
        return exit_code_for(exc)
    finally:
        ctx.close()
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_broken_pipe()


def _silence_broken_pipe() -> None:
    """After EPIPE on stdout (``| head``), point stdout at devnull so the interpreter exits quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover
        pass
