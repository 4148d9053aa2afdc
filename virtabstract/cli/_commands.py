"""Command handlers.

Each takes the :class:`~virtabstract.cli._app.Context` and the parsed arguments and
returns the exit code. Output goes through ``ctx.out`` only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import to_dict
from ._app import EXIT_OK, CLIUsageError, Context, error_dict, exit_code_for, hint_for

if TYPE_CHECKING:
    from .. import Hypervisor, VMInfo

__all__ = [
    "backends",
    "complete",
    "completion",
    "guest_cp",
    "guest_exec",
    "guest_ip",
    "host_info",
    "snapshot_create",
    "snapshot_delete",
    "snapshot_list",
    "snapshot_revert",
    "spec_schema",
    "spec_validate",
    "vm_clone",
    "vm_console",
    "vm_create",
    "vm_delete",
    "vm_list",
    "vm_power",
    "vm_reconfigure",
    "vm_show",
]


def _mib(value: int | None) -> str:
    if value is None:
        return ""
    from .._units import format_size

    return format_size(value)


# -- host ------------------------------------------------------------------------------------


def host_info(ctx: Context, args: argparse.Namespace) -> int:
    """``host info``."""
    hv = ctx.connect()
    host = hv.host
    caps = sorted(c.value for c in hv.capabilities)
    if ctx.out.json_mode:
        ctx.out.data({**to_dict(host), "url": str(hv.url), "capabilities": caps})
        return EXIT_OK
    ctx.out.fields(
        [
            ("hostname", host.hostname),
            ("os", f"{host.os_family.value}{' (' + host.os_name + ')' if host.os_name else ''}"),
            ("cpus", f"{host.cpu_count}{' x ' + host.cpu_model if host.cpu_model else ''}"),
            (
                "memory",
                _mib(host.memory_mib) + (f" ({_mib(host.free_memory_mib)} free)" if host.free_memory_mib else ""),
            ),
            ("hypervisor", f"{host.hypervisor} {host.version}".strip()),
            ("api version", host.api_version),
            ("backend", host.backend),
            ("url", str(hv.url)),
            ("capabilities", ", ".join(caps)),
        ]
    )
    return EXIT_OK


# -- vm: inventory -----------------------------------------------------------------------------


def _vm_row(info: VMInfo) -> list[str]:
    return [
        info.name,
        info.state.value,
        str(info.cpus),
        _mib(info.memory_mib),
        info.guest_os or info.guest_os_native or "",
        ",".join(info.tags),
        info.id,
    ]


def vm_list(ctx: Context, args: argparse.Namespace) -> int:
    """``vm list``."""
    from .. import OSFamily, PowerState

    state = _choice(args.state, PowerState, "--state")
    family = _choice(args.os_family, OSFamily, "--os-family")
    hv = ctx.connect()
    infos = hv.vms.list_info()
    if any(v is not None for v in (state, args.name, args.tag, family)):
        matching = {vm.id for vm in hv.vms.find(name=args.name, state=state, tag=args.tag, os_family=family)}
        infos = [i for i in infos if i.id in matching]
    infos.sort(key=lambda i: (i.name, i.id))
    if ctx.out.json_mode:
        ctx.out.data([to_dict(i) for i in infos])
    elif ctx.out.quiet:
        for info in infos:
            ctx.out.line(info.name)
    else:
        ctx.out.table(["NAME", "STATE", "CPUS", "MEMORY", "GUEST OS", "TAGS", "ID"], [_vm_row(i) for i in infos])
    return EXIT_OK


def _choice(value: str | None, enum_type: Any, option: str) -> Any:
    if value is None:
        return None
    try:
        return enum_type(value.lower())
    except ValueError:
        choices = ", ".join(m.value for m in enum_type)
        raise CLIUsageError(f"{option} {value!r} is not one of: {choices}") from None


def _show_vm(ctx: Context, info: VMInfo) -> None:
    if ctx.out.json_mode:
        ctx.out.data(to_dict(info))
        return
    guest = info.guest_os or "?"
    if info.guest_os_native and info.guest_os_native != info.guest_os:
        guest += f" (native: {info.guest_os_native})"
    ctx.out.fields(
        [
            ("name", info.name),
            ("id", info.id),
            ("state", f"{info.state.value} (native: {info.native_state})"),
            ("cpus", info.cpus),
            ("memory", _mib(info.memory_mib)),
            ("guest os", guest),
            ("firmware", info.firmware.value),
            ("autostart", "yes" if info.autostart else "no"),
            ("boot order", ", ".join(info.boot_order)),
            ("cdrom", info.cdrom or ""),
            ("tags", ", ".join(info.tags)),
            ("description", info.description),
            ("backend", info.backend),
        ]
    )
    if info.disks:
        ctx.out.line()
        ctx.out.table(
            ["DISK", "SIZE", "BUS", "FORMAT", "STORAGE", "PATH"],
            [[d.id, _mib(d.size_mib), d.bus, d.format, d.storage, d.path] for d in info.disks],
        )
    if info.nics:
        ctx.out.line()
        ctx.out.table(
            ["NIC", "MAC", "NETWORK", "KIND", "MODEL", "CONNECTED"],
            [[n.id, n.mac, n.network, n.kind, n.model, "yes" if n.connected else "no"] for n in info.nics],
        )


def vm_show(ctx: Context, args: argparse.Namespace) -> int:
    """``vm show``."""
    _show_vm(ctx, ctx.connect().vms.get(args.vm).info())
    return EXIT_OK


# -- vm: create ------------------------------------------------------------------------------


def _read_spec_data(path: str) -> dict[str, Any]:
    """A spec file as plain data (validated by VMSpec afterwards)."""
    from .. import load_spec
    from ..errors import SpecError

    if path == "-":
        import json

        try:
            data = json.loads(sys.stdin.read())
        except json.JSONDecodeError as exc:
            raise SpecError("file", f"valid JSON on standard input ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, dict):
            raise SpecError("file", "a JSON object of VM spec fields", type(data).__name__)
        return data
    return load_spec(path).to_dict()


def vm_create(ctx: Context, args: argparse.Namespace) -> int:
    """``vm create``."""
    from .. import VMSpec

    data: dict[str, Any] = _read_spec_data(args.file) if args.file else {}
    overrides = {
        "name": args.name,
        "cpus": args.cpus,
        "memory": args.memory,
        "guest_os": args.guest_os,
        "description": args.description,
        "firmware": args.firmware,
    }
    data.update({k: v for k, v in overrides.items() if v is not None})
    if args.disk:
        data["disks"] = [*data.get("disks", ()), *({"size": s} for s in args.disk)]
    if args.nic:
        data["nics"] = [*data.get("nics", ()), *({"network": n} for n in args.nic)]
    if args.tag:
        data["tags"] = [*data.get("tags", ()), *args.tag]
    if "name" not in data:
        raise CLIUsageError("the VM needs a name", "pass --name NAME or give a spec file with -f")
    spec = VMSpec.from_dict(data)
    if args.dry_run:
        if ctx.out.json_mode:
            ctx.out.data(spec.to_dict())
        else:
            ctx.out.line(f"spec for {spec.name!r} is valid; nothing created (--dry-run):")
            _print_spec(ctx, spec.to_dict())
        return EXIT_OK
    hv = ctx.connect()
    with ctx.out.progress(f"creating {spec.name}"):
        vm = hv.vms.create(spec, start=args.start)
    info = vm.info()
    if ctx.out.json_mode:
        ctx.out.data(to_dict(info))
    else:
        ctx.out.confirm(f"{info.name}: created ({info.state.value}), id {info.id}")
    return EXIT_OK


def _print_spec(ctx: Context, data: dict[str, Any]) -> None:
    import json

    ctx.out.fields([(k, json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in data.items()])


# -- vm: power verbs, concurrently -------------------------------------------------------------------


def _unique(names: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(names))


def run_each(
    ctx: Context,
    names: Sequence[str],
    description: str,
    action: Callable[[Hypervisor, str], dict[str, Any]],
    confirmation: Callable[[dict[str, Any]], str],
    *,
    jobs: int = 4,
) -> int:
    """Run *action* for each VM name, several at once; report each; return the first failure's code.

    A single VM uses the shared connection. Several use one connection per worker
    thread, so no connection object is ever shared between threads.
    """
    names = _unique(names)
    if jobs < 1:
        raise CLIUsageError("--jobs must be at least 1")
    results: list[dict[str, Any]] = []
    errors: list[BaseException | None] = []

    def one(hv_for: Callable[[], Hypervisor], name: str) -> tuple[dict[str, Any], BaseException | None]:
        try:
            return {"vm": name, "ok": True, **action(hv_for(), name)}, None
        except Exception as exc:  # noqa: BLE001 - reported per VM
            return {"vm": name, "ok": False, "error": error_dict(exc)}, exc

    total = len(names)
    with ctx.out.progress(f"{description} {total} VM{'s' if total != 1 else ''}", total=total) as bar:
        if total == 1:
            result, error = one(ctx.connect, names[0])
            bar.advance(names[0])
            results.append(result)
            errors.append(error)
        else:
            import threading

            local = threading.local()

            def worker_hv() -> Hypervisor:
                hv: Hypervisor | None = getattr(local, "hv", None)
                if hv is None:
                    hv = local.hv = ctx.worker_connection()
                return hv

            def task(name: str) -> tuple[dict[str, Any], BaseException | None]:
                outcome = one(worker_hv, name)
                bar.advance(name)
                return outcome

            with ThreadPoolExecutor(max_workers=min(jobs, total), thread_name_prefix="virtabstract") as pool:
                for result, error in pool.map(task, names):
                    results.append(result)
                    errors.append(error)
    for result, error in zip(results, errors, strict=True):
        if error is None:
            ctx.out.confirm(confirmation(result))
        elif not ctx.out.json_mode:
            if ctx.out.debug:
                ctx.out.traceback(error)
            ctx.out.error(f"{result['vm']}: {error}")
    if ctx.out.json_mode:
        ctx.out.data(results)
    failures = [e for e in errors if e is not None]
    if not failures:
        return EXIT_OK
    if ctx.out.json_mode and ctx.out.debug:
        for failure in failures:
            ctx.out.traceback(failure)
    hint = hint_for(failures[0], ctx.path)
    if hint and not ctx.out.json_mode:
        ctx.out.stderr.write(f"hint: {hint}\n")
    return exit_code_for(failures[0])


_PAST = {
    "start": "started",
    "power-off": "powered off",
    "reboot": "rebooting",
    "reset": "reset",
    "pause": "paused",
    "resume": "resumed",
    "suspend": "suspended",
}


def vm_power(ctx: Context, args: argparse.Namespace) -> int:
    """``vm start|shutdown|power-off|reboot|reset|pause|resume|suspend`` on one or more VMs."""
    verb = ctx.path.split()[-1]

    def action(hv: Hypervisor, name: str) -> dict[str, Any]:
        vm = hv.vms.get(name)
        extra: dict[str, Any] = {}
        if verb == "shutdown":
            result = vm.shutdown(timeout=args.timeout, force=args.force)
            extra = {"stage": result.stage, "method": result.method, "elapsed_s": round(result.elapsed_s, 3)}
        else:
            getattr(vm, verb.replace("-", "_"))()
        return {"id": vm.id, "state": vm.state.value, **extra}

    def confirmation(result: dict[str, Any]) -> str:
        if verb == "shutdown":
            stage = {"already_stopped": "already stopped", "forced": "powered off (did not stop in time)"}
            return f"{result['vm']}: {stage.get(result['stage'], 'shut down')}"
        return f"{result['vm']}: {_PAST.get(verb, verb)}"

    label = {"shutdown": "shutting down", "power-off": "powering off"}.get(verb, verb.rstrip("e") + "ing")
    return run_each(ctx, args.vms, label, action, confirmation, jobs=args.jobs)


def vm_delete(ctx: Context, args: argparse.Namespace) -> int:
    """``vm delete``."""
    names = _unique(args.vms)
    if not args.yes:
        if not sys.stdin.isatty():
            raise CLIUsageError(
                f"refusing to delete {', '.join(names)} without confirmation",
                "pass --yes (standard input is not a terminal, so nobody can be asked)",
            )
        what = "" if args.keep_disks else " and their disks" if len(names) > 1 else " and its disks"
        sys.stderr.write(f"Delete {', '.join(names)}{what}? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            ctx.out.info("nothing deleted")
            return EXIT_OK

    def action(hv: Hypervisor, name: str) -> dict[str, Any]:
        vm = hv.vms.get(name)
        vm.delete(disks=not args.keep_disks)
        return {"id": vm.id}

    suffix = " (disks kept)" if args.keep_disks else ""
    return run_each(ctx, names, "deleting", action, lambda r: f"{r['vm']}: deleted{suffix}", jobs=args.jobs)


# -- vm: configuration ---------------------------------------------------------------------------


def vm_reconfigure(ctx: Context, args: argparse.Namespace) -> int:
    """``vm reconfigure``."""
    if all(v is None for v in (args.cpus, args.memory, args.description, args.tag)):
        raise CLIUsageError("nothing to change", "pass --cpus, --memory, --description or --tag")
    vm = ctx.connect().vms.get(args.vm)
    plan = vm.reconfigure(
        cpus=args.cpus,
        memory=args.memory,
        description=args.description,
        tags=args.tag,
        dry_run=args.dry_run,
        defer=args.defer,
    )
    if ctx.out.json_mode:
        ctx.out.data(to_dict(plan))
        return EXIT_OK
    if not plan.changes:
        ctx.out.confirm(f"{vm.name}: nothing to change")
        return EXIT_OK
    if not ctx.out.quiet or args.dry_run:

        def show(field: str, value: Any) -> str:
            return _mib(value) if field == "memory_mib" and isinstance(value, int) else str(value)

        ctx.out.table(
            ["FIELD", "OLD", "NEW", "HOW"],
            [[c.field, show(c.field, c.old), show(c.field, c.new), c.mode.replace("_", " ")] for c in plan.changes],
        )
    if args.dry_run:
        ctx.out.confirm("dry run: nothing changed")
    else:
        ctx.out.confirm(f"{vm.name}: reconfigured")
    return EXIT_OK


def vm_clone(ctx: Context, args: argparse.Namespace) -> int:
    """``vm clone``."""
    vm = ctx.connect().vms.get(args.vm)
    with ctx.out.progress(f"cloning {vm.name} as {args.name}"):
        clone = vm.clone(args.name, linked=args.linked, snapshot=args.snapshot)
    info = clone.info()
    if ctx.out.json_mode:
        ctx.out.data(to_dict(info))
    else:
        kind = "linked clone" if args.linked else "clone"
        ctx.out.confirm(f"{info.name}: created as a {kind} of {vm.name}, id {info.id}")
    return EXIT_OK


def vm_console(ctx: Context, args: argparse.Namespace) -> int:
    """``vm console``."""
    console = ctx.connect().vms.get(args.vm).console()
    data = to_dict(console)
    if args.show_password and console.password is not None:
        data["password"] = console.password.reveal()
    if ctx.out.json_mode:
        ctx.out.data(data)
        return EXIT_OK
    rows = [(k.replace("_", " "), v) for k, v in data.items() if v not in (None, "")]
    ctx.out.fields(rows)
    return EXIT_OK


# -- snapshots ------------------------------------------------------------------------------------


def snapshot_create(ctx: Context, args: argparse.Namespace) -> int:
    """``snapshot create``."""
    vm = ctx.connect().vms.get(args.vm)
    with ctx.out.progress(f"taking snapshot {args.name} of {vm.name}"):
        snap = vm.snapshots.create(args.name, args.description, memory=args.memory, quiesce=args.quiesce)
    if ctx.out.json_mode:
        ctx.out.data(to_dict(snap.info))
    else:
        ctx.out.confirm(f"{vm.name}: snapshot {snap.name!r} created, id {snap.id}")
    return EXIT_OK


def snapshot_list(ctx: Context, args: argparse.Namespace) -> int:
    """``snapshot list``: a tree for people, a flat parent-first list for scripts."""
    vm = ctx.connect().vms.get(args.vm)
    infos = [s.info for s in vm.snapshots.list()]
    if ctx.out.json_mode:
        ctx.out.data([to_dict(i) for i in infos])
        return EXIT_OK
    if ctx.out.quiet:
        for info in infos:
            ctx.out.line(info.name)
        return EXIT_OK
    if not infos:
        ctx.out.confirm(f"{vm.name}: no snapshots")
        return EXIT_OK
    for line in render_snapshot_tree(infos):
        ctx.out.line(line)
    return EXIT_OK


def render_snapshot_tree(infos: Sequence[Any]) -> list[str]:
    """Draw snapshots as a tree with box-drawing characters; ``*`` marks the current one."""
    by_parent: dict[str | None, list[Any]] = {}
    ids = {i.id for i in infos}
    for info in infos:
        parent = info.parent_id if info.parent_id in ids else None
        by_parent.setdefault(parent, []).append(info)
    lines: list[str] = []

    def label(info: Any) -> str:
        parts = [info.name]
        details = [info.vm_state.value]
        if info.has_memory:
            details.append("memory")
        if info.created is not None:
            details.append(info.created.strftime("%Y-%m-%d %H:%M"))
        parts.append(f"({', '.join(details)})")
        if info.is_current:
            parts.append("*")
        parts.append(f"[{info.id}]")
        if info.description:
            parts.append(f"— {info.description.splitlines()[0]}")
        return " ".join(parts)

    def walk(parent: str | None, prefix: str) -> None:
        children = by_parent.get(parent, [])
        for index, info in enumerate(children):
            last = index == len(children) - 1
            if parent is None:
                lines.append(label(info))
                walk(info.id, "")
            else:
                lines.append(f"{prefix}{'└── ' if last else '├── '}{label(info)}")
                walk(info.id, prefix + ("    " if last else "│   "))

    walk(None, "")
    return lines


def snapshot_revert(ctx: Context, args: argparse.Namespace) -> int:
    """``snapshot revert``."""
    vm = ctx.connect().vms.get(args.vm)
    snap = vm.snapshots.get(args.snapshot)
    with ctx.out.progress(f"reverting {vm.name} to {snap.name}"):
        snap.revert()
    state = vm.state.value
    if ctx.out.json_mode:
        ctx.out.data({"vm": vm.name, "snapshot": to_dict(snap.info), "state": state})
    else:
        ctx.out.confirm(f"{vm.name}: reverted to {snap.name!r} ({state})")
    return EXIT_OK


def snapshot_delete(ctx: Context, args: argparse.Namespace) -> int:
    """``snapshot delete``."""
    vm = ctx.connect().vms.get(args.vm)
    snap = vm.snapshots.get(args.snapshot)
    with ctx.out.progress(f"deleting snapshot {snap.name} of {vm.name}"):
        snap.delete(children=args.children)
    if ctx.out.json_mode:
        ctx.out.data({"vm": vm.name, "snapshot": snap.id, "children": args.children, "deleted": True})
    else:
        ctx.out.confirm(f"{vm.name}: snapshot {snap.name!r} deleted{' with its children' if args.children else ''}")
    return EXIT_OK


# -- guest -------------------------------------------------------------------------------------------


def _exit_status(code: int) -> int:
    """Map a guest exit code to a process exit status (0-255)."""
    if 0 <= code <= 255:
        return code
    if -64 < code < 0:
        return 128 - code  # killed by signal -code, as shells report it
    return 1


def guest_exec(ctx: Context, args: argparse.Namespace) -> int:
    """``guest exec VM -- argv…``: pass output through, exit with the guest's status."""
    argv = list(args.argv)
    if not argv:
        raise CLIUsageError("no command given", f"put the command after --, e.g. '{ctx.path} VM -- uname -a'")
    env: dict[str, str] = {}
    for item in args.env or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIUsageError(f"--env {item!r} is not KEY=VALUE")
        env[key] = value
    stdin = sys.stdin.buffer.read() if args.stdin else None
    vm = ctx.connect().vms.get(args.vm)
    result = vm.guest.exec(argv, timeout=args.timeout, stdin=stdin, env=env or None)
    if ctx.out.json_mode:
        ctx.out.data(
            {
                "vm": vm.name,
                "argv": argv,
                "exit_code": result.exit_code,
                "stdout": result.stdout,
                "stderr": result.stderr,
            }
        )
    else:
        ctx.out.write(result.stdout)
        ctx.out.stdout.flush()
        ctx.out.stderr.write(result.stderr)
        ctx.out.stderr.flush()
    return _exit_status(result.exit_code)


def parse_location(text: str) -> tuple[str | None, str]:
    r"""Split ``VM:/path`` into (VM, path); a local path gives (None, path).

    Like scp: a word is remote when it has a ':' before any '/' and is not a
    Windows drive (``C:\x``); ``./a:b`` or an absolute path keeps it local.
    """
    head, sep, tail = text.partition(":")
    if not sep or not head or "/" in head or "\\" in head:
        return None, text
    if (
        len(head) == 1
        and head.isalpha()
        and (tail.startswith("\\") or tail.startswith("/"))
        and sys.platform == "win32"
    ):
        return None, text
    return head, tail


def guest_cp(ctx: Context, args: argparse.Namespace) -> int:
    """``guest cp SRC DST`` with exactly one side in the guest (``VM:/path``)."""
    src_vm, src = parse_location(args.source)
    dst_vm, dst = parse_location(args.destination)
    if (src_vm is None) == (dst_vm is None):
        raise CLIUsageError(
            "exactly one of SOURCE and DEST must be in a guest (VM:/path)",
            f"e.g. '{ctx.path} ./file web1:/tmp/file' or '{ctx.path} web1:/etc/hostname .'",
        )
    hv = ctx.connect()
    if dst_vm is not None:
        vm = hv.vms.get(dst_vm)
        if src == "-":
            data = sys.stdin.buffer.read()
        else:
            try:
                data = Path(src).read_bytes()
            except OSError as exc:
                raise CLIUsageError(f"cannot read {src}: {exc.strerror}") from None
        if not dst or dst.endswith("/"):
            if src == "-":
                raise CLIUsageError("a guest directory needs a file name when copying from stdin")
            dst = (dst or "/") + Path(src).name
        with ctx.out.progress(f"copying {len(data)} bytes to {vm.name}:{dst}"):
            vm.guest.write_file(dst, data)
        result = {"vm": vm.name, "direction": "to_guest", "source": src, "destination": dst, "bytes": len(data)}
    else:
        assert src_vm is not None
        vm = hv.vms.get(src_vm)
        with ctx.out.progress(f"copying {vm.name}:{src}"):
            data = vm.guest.read_file(src)
        if dst == "-":
            if ctx.out.json_mode:
                raise CLIUsageError("--json cannot be combined with '-' (stdout) as the destination")
            ctx.out.write_bytes(data)
            return EXIT_OK
        target = Path(dst)
        if target.is_dir():
            target = target / (src.rstrip("/").rsplit("/", 1)[-1] or "file")
        try:
            target.write_bytes(data)
        except OSError as exc:
            raise CLIUsageError(f"cannot write {target}: {exc.strerror}") from None
        result = {
            "vm": vm.name,
            "direction": "from_guest",
            "source": src,
            "destination": str(target),
            "bytes": len(data),
        }
    if ctx.out.json_mode:
        ctx.out.data(result)
    else:
        where = "to" if result["direction"] == "to_guest" else "from"
        ctx.out.confirm(f"{vm.name}: copied {result['bytes']} bytes {where} the guest ({result['destination']})")
    return EXIT_OK


def guest_ip(ctx: Context, args: argparse.Namespace) -> int:
    """``guest ip``."""
    vm = ctx.connect().vms.get(args.vm)
    first = None
    if args.wait:
        with ctx.out.progress(f"waiting for an IP address of {vm.name}"):
            first = vm.guest.wait_for_ip(timeout=args.timeout)
    addresses = vm.guest.ip_addresses()
    if ctx.out.json_mode:
        ctx.out.data([to_dict(a) for a in addresses])
    elif first is not None:
        ctx.out.line(first)
    elif ctx.out.quiet:
        for a in addresses:
            ctx.out.line(a.address)
    else:
        ctx.out.table(
            ["ADDRESS", "PREFIX", "INTERFACE", "MAC", "SOURCE"],
            [[a.address, a.prefix, a.interface, a.mac, a.source] for a in addresses],
        )
    return EXIT_OK


# -- backends, spec, completion ----------------------------------------------------------------------


def backends(ctx: Context, args: argparse.Namespace) -> int:
    """``backends``: registered backends, their schemes and capabilities (no connection)."""
    from .. import get_plugin_manager
    from ..errors import VirtAbstractError

    rows: list[dict[str, Any]] = []
    for entry in get_plugin_manager().load().backends.entries:
        row: dict[str, Any] = {
            "name": "",
            "schemes": list(entry.schemes),
            "plugin": entry.plugin,
            "available": False,
            "problem": "",
            "capabilities": [],
            "options": {},
        }
        try:
            cls = entry.load()
            row["name"] = cls.name
            row["capabilities"] = sorted(c.value for c in cls.capabilities)
            row["options"] = dict(cls.accepted_options)
            try:
                cls.import_sdk()
                row["available"] = True
            except ImportError as exc:
                row["problem"] = f"needs {cls.install_hint or 'its SDK'} ({exc.name or exc})"
        except VirtAbstractError as exc:
            row["problem"] = str(exc)
        row["name"] = row["name"] or entry.schemes[0]
        rows.append(row)
    if ctx.out.json_mode:
        ctx.out.data(rows)
    elif ctx.out.quiet:
        for row in rows:
            ctx.out.line(row["name"])
    else:
        ctx.out.table(
            ["BACKEND", "SCHEMES", "AVAILABLE", "CAPABILITIES"],
            [
                [
                    r["name"],
                    ", ".join(f"{s}://" for s in r["schemes"]),
                    "yes" if r["available"] else f"no: {r['problem']}",
                    ", ".join(r["capabilities"]),
                ]
                for r in rows
            ],
        )
    return EXIT_OK


def spec_schema(ctx: Context, args: argparse.Namespace) -> int:
    """``spec schema``: the JSON Schema on stdout (always JSON)."""
    from .. import spec_schema as schema

    ctx.out.data(schema())
    return EXIT_OK


def spec_validate(ctx: Context, args: argparse.Namespace) -> int:
    """``spec validate FILE``."""
    data = _read_spec_data(args.file)
    if ctx.out.json_mode:
        ctx.out.data(data)
    else:
        ctx.out.confirm(f"{args.file}: valid spec for VM {data['name']!r}")
        if not ctx.out.quiet:
            _print_spec(ctx, data)
    return EXIT_OK


def completion(ctx: Context, args: argparse.Namespace) -> int:
    """``completion bash|zsh|fish``."""
    from ._completion import script

    ctx.out.write(script(args.shell))
    return EXIT_OK


def complete(ctx: Context, args: argparse.Namespace) -> int:
    """``__complete WORDS…``: candidates for the last word, one per line (never fails)."""
    from ._completion import candidates

    try:
        found = candidates(list(args.words), ctx)
    except Exception:  # noqa: BLE001 - completion must never print errors
        found = []
    for item in found:
        ctx.out.line(item)
    return EXIT_OK
