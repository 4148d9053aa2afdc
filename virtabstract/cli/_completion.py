"""Shell completion for bash, zsh and fish.

The scripts are thin: they hand the words typed so far to the hidden
``virtabstract __complete -- WORD…`` command, which walks the same command
tree that builds the parser and prints the candidates for the last word, one
per line. A line ``:files`` asks the shell for its own file-name completion.
VM and snapshot names come from the hypervisor named on the command line
(``--uri``/``--profile``), the environment or the default profile; completion
never prompts and stays silent on errors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._spec_tree import COMMANDS, GLOBAL_ARGS, Arg, Cmd

if TYPE_CHECKING:
    from ._app import Context

__all__ = ["FILES", "candidates", "script"]

FILES = ":files"
"""The directive line asking the shell to complete file names."""

_BASH = r"""# bash completion for virtabstract
# Install: eval "$(virtabstract completion bash)"   (e.g. in ~/.bashrc)
_virtabstract_complete() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local IFS=$'\n'
    local line
    local -a lines
    lines=($(virtabstract __complete -- "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
    COMPREPLY=()
    for line in "${lines[@]}"; do
        if [[ "$line" == ":files" ]]; then
            compopt -o filenames 2>/dev/null
            COMPREPLY+=($(compgen -f -- "$cur"))
        else
            COMPREPLY+=("$line")
        fi
    done
}
complete -F _virtabstract_complete virtabstract
"""

_ZSH = r"""#compdef virtabstract
# zsh completion for virtabstract
# Install: eval "$(virtabstract completion zsh)"   (e.g. in ~/.zshrc, after compinit)
_virtabstract() {
    local -a lines found
    lines=("${(@f)$(virtabstract __complete -- "${(@)words[2,CURRENT]}" 2>/dev/null)}")
    found=(${lines:#:files})
    found=(${found:#})
    if (( ${lines[(Ie):files]} )); then
        _files
    fi
    (( ${#found} )) && compadd -- "${found[@]}"
    return 0
}
if (( $+functions[compdef] )); then
    compdef _virtabstract virtabstract
else
    autoload -Uz compinit && compinit && compdef _virtabstract virtabstract
fi
"""

_FISH = r"""# fish completion for virtabstract
# Install: virtabstract completion fish > ~/.config/fish/completions/virtabstract.fish
function __virtabstract_complete
    set -l tokens (commandline -opc) (commandline -ct)
    set -e tokens[1]
    for line in (virtabstract __complete -- $tokens 2>/dev/null)
        if test "$line" = ":files"
            __fish_complete_path (commandline -ct)
        else
            echo $line
        end
    end
end
complete -c virtabstract -f -a '(__virtabstract_complete)'
"""

_SCRIPTS = {"bash": _BASH, "zsh": _ZSH, "fish": _FISH}


def script(shell: str) -> str:
    """The completion script for *shell* (``bash``, ``zsh`` or ``fish``)."""
    return _SCRIPTS[shell]


_ROOT_ONLY = (Arg(("--version",), {"action": "version"}), Arg(("--help", "-h"), {"action": "help"}))
_HELP = Arg(("--help", "-h"), {"action": "help"})


def _options(cmd: Cmd | None) -> list[Arg]:
    own = [a for a in (cmd.args if cmd else ()) if not a.positional]
    extra = [_HELP] if cmd else list(_ROOT_ONLY)
    return [*own, *GLOBAL_ARGS, *extra]


def _find_option(options: Sequence[Arg], word: str) -> Arg | None:
    return next((a for a in options if word in a.names), None)


def candidates(words: Sequence[str], ctx: Context | None = None) -> list[str]:
    """Completion candidates for the last of *words* (the words after the program name)."""
    words = list(words) or [""]
    current = words[-1]
    cmd: Cmd | None = None
    children: Sequence[Cmd] = COMMANDS
    positionals: list[str] = []
    pending: Arg | None = None
    globals_seen: dict[str, str] = {}
    after_double_dash = False
    for word in words[:-1]:
        if pending is not None:
            globals_seen[pending.dest] = word
            pending = None
            continue
        if after_double_dash:
            positionals.append(word)
            continue
        if word == "--":
            after_double_dash = True
            continue
        if word.startswith("-") and len(word) > 1:
            name, eq, value = word.partition("=")
            option = _find_option(_options(cmd), name)
            if option is not None and option.takes_value:
                if eq:
                    globals_seen[option.dest] = value
                else:
                    pending = option
            continue
        child = next((c for c in children if c.name == word), None)
        if child is not None and not positionals:
            cmd, children = child, child.children
            continue
        positionals.append(word)
    if after_double_dash or (cmd is not None and cmd.name == "__complete"):
        return []
    if pending is not None:
        return _values(pending, current, positionals, cmd, globals_seen, ctx)
    if current.startswith("-"):
        names = sorted({n for a in _options(cmd) for n in a.names if n.startswith("--") or len(current) <= 2})
        return [n for n in names if n.startswith(current)]
    if children:
        return [c.name for c in children if not c.hidden and c.name.startswith(current)]
    if cmd is None:
        return []
    positional_args = [a for a in cmd.args if a.positional]
    if not positional_args:
        return []
    index = min(len(positionals), len(positional_args) - 1)
    spec = positional_args[index]
    if index < len(positionals) and spec.kwargs.get("nargs") not in ("+", "*"):
        return []
    if cmd.trailing and spec.dest == cmd.trailing:
        return []
    return _values(spec, current, positionals, cmd, globals_seen, ctx)


def _values(
    spec: Arg,
    current: str,
    positionals: Sequence[str],
    cmd: Cmd | None,
    globals_seen: dict[str, str],
    ctx: Context | None,
) -> list[str]:
    choices = spec.kwargs.get("choices")
    if choices:
        return [str(c) for c in choices if str(c).startswith(current)]
    kind = spec.complete
    found: list[str] = []
    if kind == "file":
        return [FILES]
    if kind == "profile":
        from ._config import profile_names

        found = profile_names()
    elif kind == "state":
        from .._model import PowerState

        found = [s.value for s in PowerState]
    elif kind == "os_family":
        from .._model import OSFamily

        found = [f.value for f in OSFamily]
    elif kind == "guest_os":
        from .._catalog import guest_os_ids

        found = list(guest_os_ids())
    elif kind in ("vm", "snapshot"):
        found = _from_hypervisor(kind, positionals, cmd, globals_seen, ctx)
    return sorted(f for f in set(found) if f.startswith(current))


def _from_hypervisor(
    kind: str, positionals: Sequence[str], cmd: Cmd | None, globals_seen: dict[str, str], ctx: Context | None
) -> list[str]:
    """VM names, or the snapshot names of the VM given earlier on the line; never prompts."""
    import virtabstract

    from ._config import resolve_settings

    uri = globals_seen.get("uri") or (getattr(ctx.args, "uri", None) if ctx else None)
    profile = globals_seen.get("profile") or (getattr(ctx.args, "profile", None) if ctx else None)
    settings = resolve_settings(uri=uri, profile=profile)
    with virtabstract.connect(
        settings.uri, username=settings.username, password=settings.password, **settings.options
    ) as hv:
        if kind == "vm":
            return [info.name for info in hv.vms.list_info()]
        vm_position = next(
            (i for i, a in enumerate(a for a in (cmd.args if cmd else ()) if a.positional) if a.complete == "vm"), None
        )
        if vm_position is None or vm_position >= len(positionals):
            return []
        vm = hv.vms.get(positionals[vm_position])
        return [s.name for s in vm.snapshots.list()]
