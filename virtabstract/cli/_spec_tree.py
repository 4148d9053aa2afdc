"""The command definitions.

One declarative tree builds the argparse parser, drives shell completion and
generates the CLI reference.

Nothing here imports the core library's heavy parts or rich, so ``--help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["COMMANDS", "EXIT_CODES", "GLOBAL_ARGS", "Arg", "Cmd", "arg", "iter_commands"]

EXIT_CODES: tuple[tuple[int, str, str], ...] = (
    (0, "ok", "the command succeeded"),
    (1, "error", "any other failure (backend error, guest operation failed, vetoed by policy)"),
    (2, "usage", "bad command line, spec, URL, configuration or profile (UsageError, SpecError, InvalidURL)"),
    (3, "not found", "the VM, snapshot, guest file, network or storage named does not exist"),
    (4, "invalid state", "not allowed in the VM's current power state (e.g. start a running VM)"),
    (5, "unsupported", "the backend cannot do it, or no backend is installed for the URL's scheme"),
    (6, "timeout", "an operation or wait did not finish in time"),
    (7, "connection", "the hypervisor could not be reached, refused the credentials, or went away"),
    (8, "already exists", "a VM or snapshot with that name already exists"),
    (130, "interrupted", "Ctrl-C"),
)
"""(code, short name, meaning) — documented in ``--help`` and docs/cli.md."""

ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("VIRTABSTRACT_URI", "connection URL used when --uri and --profile are not given"),
    ("VIRTABSTRACT_PROFILE", "profile used when --uri, --profile and VIRTABSTRACT_URI are not given"),
    ("VIRTABSTRACT_USERNAME", "user name when neither the URL nor the profile has one"),
    ("VIRTABSTRACT_PASSWORD", "password when the profile has none (never pass one as an option)"),
    ("VIRTABSTRACT_CONFIG", "path of the configuration file (default ~/.config/virtabstract/config.toml)"),
    ("VIRTABSTRACT_PROGRESS", "auto (progress on stderr when it is a terminal), always or never"),
    ("NO_COLOR", "plain tables even on a terminal"),
)


@dataclass(frozen=True)
class Arg:
    """One argparse argument plus what completes it (``vm``, ``snapshot``, ``file``, ``profile``…)."""

    names: tuple[str, ...]
    kwargs: Mapping[str, Any]
    complete: str = ""

    @property
    def positional(self) -> bool:
        """True for positional arguments."""
        return not self.names[0].startswith("-")

    @property
    def takes_value(self) -> bool:
        """True when an option consumes the next word."""
        return self.kwargs.get("action") not in ("store_true", "store_false", "count", "version", "help")

    @property
    def dest(self) -> str:
        """The attribute name on the parsed namespace."""
        if "dest" in self.kwargs:
            return str(self.kwargs["dest"])
        name = next((n for n in self.names if n.startswith("--")), self.names[0])
        return name.lstrip("-").replace("-", "_")


def arg(*names: str, complete: str = "", **kwargs: Any) -> Arg:
    """Declare an argument: ``arg("--cpus", type=int, help="…")``."""
    return Arg(names, kwargs, complete)


@dataclass(frozen=True)
class Cmd:
    """A command or a group of commands."""

    name: str
    help: str
    handler: str = ""
    """Function name in :mod:`virtabstract.cli._commands`; empty for groups."""
    args: tuple[Arg, ...] = ()
    children: tuple[Cmd, ...] = ()
    description: str = ""
    examples: tuple[str, ...] = ()
    json: str = ""
    """What ``--json`` prints (documented keys)."""
    hidden: bool = False
    trailing: str = ""
    """The positional that receives every word after ``--`` (e.g. ``guest exec VM -- argv…``)."""


GLOBAL_ARGS: tuple[Arg, ...] = (
    arg("--uri", "-c", metavar="URI", help="hypervisor URL, e.g. qemu:///system, esx://host/, mock:///tmp/lab.json"),
    arg("--profile", "-p", metavar="NAME", complete="profile", help="named profile from the configuration file"),
    arg("--json", action="store_true", help="print the result as JSON on stdout (stable keys, see docs)"),
    arg("--quiet", "-q", action="store_true", help="no progress or confirmations; listings print names only"),
    arg("--debug", action="store_true", help="show tracebacks and debug logs on errors (secrets stay masked)"),
    arg(
        "--ask-password",
        action="store_true",
        help="prompt for the password before connecting (needs a terminal)",
    ),
)

_VMS = arg("vms", nargs="+", metavar="VM", complete="vm", help="VM names or ids (several run concurrently)")
_VM = arg("vm", metavar="VM", complete="vm", help="VM name or id")
_JOBS = arg("--jobs", "-j", type=int, default=4, metavar="N", help="VMs handled at once (default 4)")


def _power(name: str, handler_verb: str, help_text: str, *extra: Arg, examples: tuple[str, ...] = ()) -> Cmd:
    return Cmd(
        name,
        help_text,
        handler="vm_power",
        args=(_VMS, *extra, _JOBS),
        description=help_text[0].upper() + help_text[1:] + ".",
        examples=examples or (f"virtabstract vm {name} web1 web2",),
        json="a list with one object per VM: vm, id, ok, state, and error (type, message, exit_code) on failure",
    )


_VM_COMMANDS: tuple[Cmd, ...] = (
    Cmd(
        "list",
        "list VMs, optionally filtered",
        handler="vm_list",
        args=(
            arg("--state", metavar="STATE", complete="state", help="only VMs in this power state (running, stopped…)"),
            arg("--name", metavar="GLOB", help="only names matching this shell-style pattern, e.g. 'web*'"),
            arg("--tag", metavar="TAG", help="only VMs carrying this tag"),
            arg("--os-family", metavar="FAMILY", complete="os_family", help="only guests of this OS family (linux…)"),
        ),
        description="List the VMs of the hypervisor. Filters combine (all must match).",
        examples=("virtabstract vm list --state running --name 'web*'", "virtabstract vm list --json"),
        json="a list of VMInfo objects (see 'VM object' below)",
    ),
    Cmd(
        "show",
        "show one VM's configuration and state",
        handler="vm_show",
        args=(_VM,),
        description="Show a VM's configuration (CPUs, memory, disks, NICs, tags) and its power state.",
        examples=("virtabstract vm show web1",),
        json="one VMInfo object",
    ),
    Cmd(
        "create",
        "create a VM from a spec file or from options",
        handler="vm_create",
        args=(
            arg(
                "-f",
                "--file",
                metavar="SPEC",
                complete="file",
                help="spec file (.json, .yaml, .yml; '-' reads JSON from stdin)",
            ),
            arg("--name", metavar="NAME", help="VM name (overrides the file's)"),
            arg("--cpus", type=int, metavar="N", help="virtual CPUs"),
            arg("--memory", metavar="SIZE", help="memory, e.g. 2GiB or 512MiB (a bare number is MiB)"),
            arg("--guest-os", metavar="ID", complete="guest_os", help="guest OS catalog id, e.g. ubuntu-22.04"),
            arg("--disk", action="append", metavar="SIZE", help="add a disk of this size (repeatable)"),
            arg("--nic", action="append", metavar="NETWORK", help="add a NIC on this network (repeatable)"),
            arg("--tag", action="append", metavar="TAG", help="add a tag (repeatable)"),
            arg("--description", metavar="TEXT", help="free text stored with the VM"),
            arg("--firmware", choices=("bios", "uefi"), help="boot firmware"),
            arg("--start", action="store_true", help="start the VM once created"),
            arg("--dry-run", action="store_true", help="validate and print the spec; create nothing"),
        ),
        description=(
            "Create a VM. The spec comes from --file (JSON or YAML, see 'virtabstract spec schema') and/or "
            "options; options override the file's fields. Nothing is created when a field is invalid."
        ),
        examples=(
            "virtabstract vm create -f web1.yaml",
            "virtabstract vm create --name web1 --cpus 2 --memory 2GiB --guest-os ubuntu-22.04 --disk 20GiB",
        ),
        json="the created VMInfo (with --dry-run: the validated spec)",
    ),
    _power("start", "start", "power on VMs (a suspended VM resumes)"),
    Cmd(
        "shutdown",
        "shut VMs down gracefully and wait until they stop",
        handler="vm_power",
        args=(
            _VMS,
            arg("--timeout", type=float, default=60.0, metavar="SECONDS", help="how long to wait (default 60)"),
            arg("--force", action="store_true", help="power off when the guest does not stop in time"),
            _JOBS,
        ),
        description=(
            "Ask the guests to shut down (ACPI, agent or tools) and wait until they are stopped. Without "
            "--force a guest that does not stop in time is an error (exit code 6)."
        ),
        examples=("virtabstract vm shutdown web1 --timeout 120 --force",),
        json="a list with one object per VM: vm, id, ok, state, stage (graceful/forced/already_stopped), method",
    ),
    _power("power-off", "power_off", "cut the power of VMs at once (no guest cooperation)"),
    _power("reboot", "reboot", "ask the guests to restart (graceful)"),
    _power("reset", "reset", "hard-reset VMs, like pressing the reset button"),
    _power("pause", "pause", "freeze VMs, keeping their memory in RAM"),
    _power("resume", "resume", "continue paused VMs"),
    _power("suspend", "suspend", "save VMs' memory to disk and stop them ('start' restores them)"),
    Cmd(
        "reconfigure",
        "change CPUs, memory, description or tags",
        handler="vm_reconfigure",
        args=(
            _VM,
            arg("--cpus", type=int, metavar="N", help="virtual CPUs"),
            arg("--memory", metavar="SIZE", help="memory, e.g. 4GiB"),
            arg("--description", metavar="TEXT", help="new description"),
            arg("--tag", action="append", metavar="TAG", help="replace the tags with these (repeatable)"),
            arg("--dry-run", action="store_true", help="only show the plan: what would change and how"),
            arg("--defer", action="store_true", help="save changes that need a power cycle for the next one"),
        ),
        description=(
            "Change a VM's configuration. Each change is applied live, offline, deferred (--defer), or refused "
            "because the VM must be powered off first (exit code 4). --dry-run prints the plan and changes nothing."
        ),
        examples=("virtabstract vm reconfigure web1 --cpus 4 --memory 8GiB --dry-run",),
        json="the ReconfigurePlan: vm_id, applied, changes (field, old, new, mode)",
    ),
    Cmd(
        "clone",
        "copy a VM under a new name",
        handler="vm_clone",
        args=(
            arg("vm", metavar="SOURCE", complete="vm", help="the VM to copy"),
            arg("name", metavar="NAME", help="name of the new VM"),
            arg("--linked", action="store_true", help="share the source's disks copy-on-write"),
            arg("--snapshot", metavar="SNAPSHOT", complete="snapshot", help="clone the state of this snapshot"),
        ),
        description="Copy a VM as a new VM with a new id and new MAC addresses.",
        examples=("virtabstract vm clone web1 web2 --linked --snapshot clean",),
        json="the new VM's VMInfo",
    ),
    Cmd(
        "delete",
        "delete VMs (they must be stopped)",
        handler="vm_delete",
        args=(
            _VMS,
            arg("--keep-disks", action="store_true", help="keep the disk images on storage"),
            arg("--yes", "-y", action="store_true", help="do not ask for confirmation (required without a terminal)"),
            _JOBS,
        ),
        description=(
            "Delete stopped VMs with their snapshots and, unless --keep-disks, their disks. Asks for "
            "confirmation on a terminal; elsewhere --yes is required."
        ),
        examples=("virtabstract vm delete web2 --yes",),
        json="a list with one object per VM: vm, id, ok, and error on failure",
    ),
    Cmd(
        "console",
        "show how to reach a VM's console",
        handler="vm_console",
        args=(_VM, arg("--show-password", action="store_true", help="print the console password instead of ***")),
        description="Show the console endpoint (protocol, host, port, URL). The password is masked unless asked.",
        examples=("virtabstract vm console web1",),
        json="the ConsoleInfo: protocol, host, port, password ('***' unless --show-password), tls_port, url…",
    ),
)

_SNAPSHOT_COMMANDS: tuple[Cmd, ...] = (
    Cmd(
        "create",
        "take a snapshot",
        handler="snapshot_create",
        args=(
            _VM,
            arg("name", metavar="NAME", help="snapshot name"),
            arg("--description", default="", metavar="TEXT", help="free text"),
            arg("--memory", action="store_true", help="include the running VM's memory"),
            arg("--quiesce", action="store_true", help="flush guest file systems first (needs the guest agent)"),
        ),
        description="Take a snapshot of a VM.",
        examples=("virtabstract snapshot create web1 clean --description 'fresh install'",),
        json="the SnapshotInfo",
    ),
    Cmd(
        "list",
        "show a VM's snapshots as a tree",
        handler="snapshot_list",
        args=(_VM,),
        description="Show the snapshot tree; the current snapshot is marked with '*'.",
        examples=("virtabstract snapshot list web1",),
        json="a flat list of SnapshotInfo objects, parents before children (parent_id/children_ids give the tree)",
    ),
    Cmd(
        "revert",
        "return a VM to a snapshot",
        handler="snapshot_revert",
        args=(_VM, arg("snapshot", metavar="SNAPSHOT", complete="snapshot", help="snapshot name or id")),
        description="Return the VM to the state of a snapshot.",
        examples=("virtabstract snapshot revert web1 clean",),
        json="vm, snapshot (SnapshotInfo), state",
    ),
    Cmd(
        "delete",
        "delete a snapshot (or a subtree)",
        handler="snapshot_delete",
        args=(
            _VM,
            arg("snapshot", metavar="SNAPSHOT", complete="snapshot", help="snapshot name or id"),
            arg("--children", action="store_true", help="delete its descendants too"),
        ),
        description="Delete a snapshot; its data merges into its children, or --children deletes the subtree.",
        examples=("virtabstract snapshot delete web1 clean --children",),
        json="vm, snapshot (id), children (bool), deleted (true)",
    ),
)

_GUEST_COMMANDS: tuple[Cmd, ...] = (
    Cmd(
        "exec",
        "run a program in the guest; its exit status becomes ours",
        handler="guest_exec",
        args=(
            _VM,
            arg("argv", nargs="*", metavar="ARGV", help="the program and its arguments, after --"),
            arg("--timeout", type=float, default=30.0, metavar="SECONDS", help="how long it may run (default 30)"),
            arg("--stdin", "-i", action="store_true", help="pass our standard input to the program"),
            arg("--env", action="append", metavar="KEY=VALUE", help="environment variable (repeatable)"),
        ),
        description=(
            "Run a program through the guest agent (no shell: use 'sh -c \"…\"' for one). Its standard output "
            "and error are passed through, and the CLI exits with its exit status."
        ),
        examples=("virtabstract guest exec web1 -- uname -a", "virtabstract guest exec web1 -- sh -c 'echo $HOME'"),
        json="vm, argv, exit_code, stdout, stderr (the exit status is still the program's)",
        trailing="argv",
    ),
    Cmd(
        "cp",
        "copy a file into or out of the guest",
        handler="guest_cp",
        args=(
            arg("source", metavar="SOURCE", complete="file", help="local path or VM:/path ('-' is stdin)"),
            arg("destination", metavar="DEST", complete="file", help="local path or VM:/path ('-' is stdout)"),
        ),
        description=(
            "Copy one file between this machine and a guest: 'guest cp local.txt VM:/tmp/x' or "
            "'guest cp VM:/etc/os-release .'. A local path containing ':' can be written as ./a:b."
        ),
        examples=("virtabstract guest cp ./app.conf web1:/etc/app.conf", "virtabstract guest cp web1:/etc/hostname -"),
        json="vm, direction (to_guest/from_guest), source, destination, bytes",
    ),
    Cmd(
        "ip",
        "show the guest's IP addresses",
        handler="guest_ip",
        args=(
            _VM,
            arg("--wait", action="store_true", help="wait for a usable address, then print the first one"),
            arg("--timeout", type=float, default=120.0, metavar="SECONDS", help="how long to wait (default 120)"),
        ),
        description="Show the addresses the guest reports (loopback excluded). --wait waits for a usable IPv4 one.",
        examples=("virtabstract guest ip web1 --wait --timeout 300",),
        json="a list of IPAddressInfo objects: address, prefix, interface, mac, source",
    ),
)

COMMANDS: tuple[Cmd, ...] = (
    Cmd(
        "host",
        "the host and hypervisor",
        children=(
            Cmd(
                "info",
                "show the host, the hypervisor and the connection's capabilities",
                handler="host_info",
                description="Show the host (name, OS, CPUs, memory), the hypervisor and what the connection can do.",
                examples=("virtabstract --uri qemu:///system host info",),
                json="the HostInfo fields plus url (password masked) and capabilities (sorted list)",
            ),
        ),
    ),
    Cmd("vm", "manage virtual machines", children=_VM_COMMANDS),
    Cmd("snapshot", "manage snapshots", children=_SNAPSHOT_COMMANDS),
    Cmd("guest", "act inside the guest OS through its agent", children=_GUEST_COMMANDS),
    Cmd(
        "backends",
        "list installed backends, their URL schemes and capabilities",
        handler="backends",
        description="List the registered backends; 'available' says whether the backend's SDK is installed.",
        examples=("virtabstract backends --json",),
        json="a list of objects: name, schemes, plugin, available, problem, capabilities, options",
    ),
    Cmd(
        "spec",
        "VM spec files",
        children=(
            Cmd(
                "schema",
                "print the JSON Schema of spec files",
                handler="spec_schema",
                description="Print the JSON Schema (draft 2020-12) that 'vm create -f' spec files follow.",
                examples=("virtabstract spec schema > vmspec.schema.json",),
                json="the schema (always JSON)",
            ),
            Cmd(
                "validate",
                "check a spec file without connecting",
                handler="spec_validate",
                args=(arg("file", metavar="SPEC", complete="file", help="spec file (.json, .yaml, .yml)"),),
                description="Validate a spec file and print it normalised (sizes in MiB); exit code 2 if invalid.",
                examples=("virtabstract spec validate web1.yaml",),
                json="the normalised spec",
            ),
        ),
    ),
    Cmd(
        "completion",
        "print a shell completion script",
        handler="completion",
        args=(arg("shell", choices=("bash", "zsh", "fish"), help="the shell"),),
        description=(
            'Print a completion script. bash: eval "$(virtabstract completion bash)" in ~/.bashrc; '
            'zsh: eval "$(virtabstract completion zsh)" in ~/.zshrc; '
            "fish: virtabstract completion fish > ~/.config/fish/completions/virtabstract.fish. "
            "VM names are completed from the hypervisor the command line (or environment/profile) names."
        ),
        examples=('eval "$(virtabstract completion bash)"',),
    ),
    Cmd(
        "__complete",
        "(internal) completion candidates for the words given",
        handler="complete",
        args=(arg("words", nargs="*", help="the command line so far, after --; the last word is completed"),),
        hidden=True,
        trailing="words",
    ),
)


def iter_commands(
    commands: tuple[Cmd, ...] = COMMANDS, prefix: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], Cmd]]:
    """Every command and group, depth first, with its path (``("vm", "start")``)."""
    for cmd in commands:
        path = (*prefix, cmd.name)
        yield path, cmd
        yield from iter_commands(cmd.children, path)
