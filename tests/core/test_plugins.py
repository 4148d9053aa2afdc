"""Plugin manager, backend registry, hooks and connect()."""

import inspect
import logging
import subprocess
import sys

import pytest

import virtabstract
from virtabstract import Backend, Capability, HostInfo, OSFamily, PluginManager, PowerState, VMInfo, hookimpl, hookspecs
from virtabstract.errors import (
    BackendUnavailable,
    InvalidURL,
    OperationVetoed,
    UnsupportedOperation,
    UsageError,
    VMNotFound,
)


class TinyBackend(Backend):
    """A two-VM backend written the way a third party would."""

    name = "tiny"
    capabilities = frozenset({Capability.START})
    accepted_options = {"flavour": "a test option"}

    def __init__(self, url, credentials, options):
        super().__init__(url, credentials, options)
        self.vms = {
            "id-1": VMInfo(
                id="id-1", name="alpha", state=PowerState.STOPPED, native_state="off", cpus=1, memory_mib=512
            ),
            "id-2": VMInfo(
                id="id-2", name="beta", state=PowerState.STOPPED, native_state="off", cpus=1, memory_mib=512
            ),
        }
        self.closed = False

    def close(self):
        self.closed = True

    def host_info(self):
        return HostInfo("tinyhost", OSFamily.LINUX, 1, 1024, "tiny", "1.0", self.name)

    def list_vms(self):
        return list(self.vms.values())

    def get_vm(self, vm_id):
        try:
            return self.vms[vm_id]
        except KeyError:
            raise VMNotFound(vm_id) from None

    def start(self, vm_id):
        from dataclasses import replace

        self.vms[vm_id] = replace(self.vms[vm_id], state=PowerState.RUNNING, native_state="on")


class TinyPlugin:
    @hookimpl
    def virtabstract_register_backends(self, register):
        register(["tiny", "tiny2"], TinyBackend)


def manager(*plugins, **kwargs):
    pm = PluginManager(autoload=False, **kwargs)
    for plugin in plugins:
        pm.register(plugin, name=type(plugin).__name__)
    return pm


def test_third_party_backend_through_the_public_hook():
    with virtabstract.connect("tiny://", plugin_manager=manager(TinyPlugin()), flavour="x") as hv:
        assert hv.backend_name == "tiny"
        assert hv.host.hostname == "tinyhost"
        assert [vm.name for vm in hv.vms] == ["alpha", "beta"]
        assert len(hv.vms) == 2
        assert hv.vms.get("beta").id == "id-2"
        assert hv.vms.get("id-1").name == "alpha"
        assert "alpha" in hv.vms and "gamma" not in hv.vms
        vm = hv.vms.get("alpha")
        vm.start()
        assert vm.state is PowerState.RUNNING
        with pytest.raises(UnsupportedOperation) as info:
            vm.pause()
        assert (info.value.backend, info.value.operation) == ("tiny", "pause")
        with pytest.raises(VMNotFound):
            hv.vms.get("gamma")
    assert hv.closed and hv.backend.closed
    with pytest.raises(UsageError, match="closed"):
        hv.vms.list()


def test_transport_falls_back_to_driver_scheme():
    with virtabstract.connect("tiny+ssh://h/", plugin_manager=manager(TinyPlugin())) as hv:
        assert hv.url.transport == "ssh"


def test_unknown_option_is_named():
    with pytest.raises(InvalidURL, match="colour"):
        virtabstract.connect("tiny://", plugin_manager=manager(TinyPlugin()), colour="red")


def test_unknown_scheme_says_what_to_install():
    pm = manager()
    with pytest.raises(BackendUnavailable, match=r"pip install 'virtabstract\[esxi\]'"):
        virtabstract.connect("vpx://vc/", plugin_manager=pm)
    with pytest.raises(BackendUnavailable, match="no backend serves nothing://"):
        virtabstract.connect("nothing://", plugin_manager=pm)


def test_missing_sdk_disables_one_backend():
    class NeedsSdk(TinyBackend):
        install_hint = "pip install 'virtabstract[tiny]'"

        @classmethod
        def import_sdk(cls):
            import virtabstract_no_such_sdk  # noqa: F401

    class Plugin:
        @hookimpl
        def virtabstract_register_backends(self, register):
            register("needs", NeedsSdk)

    with pytest.raises(BackendUnavailable, match=r"virtabstract\[tiny\].*virtabstract_no_such_sdk"):
        virtabstract.connect("needs://", plugin_manager=manager(Plugin()))


def test_lazy_string_registration_and_bad_target():
    class Plugin:
        @hookimpl
        def virtabstract_register_backends(self, register):
            register("lazy", f"{__name__}:TinyBackend")
            register("broken", f"{__name__}:TinyPlugin")
            register("gone", "virtabstract_no_such_module:Backend")

    pm = manager(Plugin())
    assert pm.backend_for("lazy") is TinyBackend
    with pytest.raises(BackendUnavailable, match="not a Backend subclass"):
        pm.backend_for("broken")
    with pytest.raises(BackendUnavailable, match="could not be imported"):
        pm.backend_for("gone")


def test_duplicate_scheme_names_both_plugins():
    class Other:
        @hookimpl
        def virtabstract_register_backends(self, register):
            register("tiny", TinyBackend)

    pm = PluginManager(autoload=False)
    pm.register(TinyPlugin(), name="first")
    pm.register(Other(), name="second")
    with pytest.raises(UsageError, match="first and second"):
        pm.load()


def test_block_list_and_builtin_mock_registration(monkeypatch):
    monkeypatch.setenv("VIRTABSTRACT_BLOCK_PLUGINS", "virtabstract.backends.mock.plugin")
    pm = PluginManager(autoload=False)
    with pytest.raises(BackendUnavailable):
        pm.backend_for("mock")
    monkeypatch.delenv("VIRTABSTRACT_BLOCK_PLUGINS")
    assert PluginManager(autoload=False).backend_for("mock").name == "mock"


def test_disable_autoload_env(monkeypatch):
    monkeypatch.setenv("VIRTABSTRACT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert PluginManager().autoload is False
    monkeypatch.delenv("VIRTABSTRACT_DISABLE_PLUGIN_AUTOLOAD")
    assert PluginManager().autoload is True


def test_trace_switch_logs_hook_calls(caplog):
    caplog.set_level(logging.DEBUG, logger="virtabstract.plugins")
    with virtabstract.connect("tiny://", plugin_manager=manager(TinyPlugin(), trace=True)) as hv:
        hv.vms.list()
    assert any("virtabstract_connection_opened" in r.getMessage() for r in caplog.records)


class Audit:
    def __init__(self):
        self.before = []
        self.after = []

    @hookimpl
    def virtabstract_before_operation(self, context):
        self.before.append(context)
        if context.operation == "start" and context.vm_id == "id-2":
            raise OperationVetoed("start", "beta is frozen by policy")

    @hookimpl
    def virtabstract_after_operation(self, context, result, error):
        self.after.append((context, result, error))


def test_policy_plugin_vetoes_and_audit_sees_everything():
    audit = Audit()
    with virtabstract.connect("tiny://root:CanaryPw-77@h/", plugin_manager=manager(TinyPlugin(), audit)) as hv:
        hv.vms.get("alpha").start()
        beta = hv.vms.get("beta")
        with pytest.raises(OperationVetoed, match="frozen"):
            beta.start()
        assert beta.state is PowerState.STOPPED  # the backend was never called
    ops = [c.operation for c in audit.before]
    assert "start" in ops and "get_vm" in ops
    started = [(c, r, e) for c, r, e in audit.after if c.operation == "start"]
    assert len(started) == 1 and started[0][2] is None and started[0][0].elapsed_s >= 0
    for context in audit.before:
        assert "CanaryPw-77" not in repr(context)


def test_after_hook_sees_errors():
    audit = Audit()
    with virtabstract.connect("tiny://", plugin_manager=manager(TinyPlugin(), audit)) as hv:
        with pytest.raises(VMNotFound):
            hv.vms.get("nope")
    errors = [e for _, _, e in audit.after if e is not None]
    assert errors and isinstance(errors[0], VMNotFound)


def test_connection_hooks():
    seen = []

    class Watch:
        @hookimpl
        def virtabstract_connection_opened(self, hypervisor):
            seen.append(("open", hypervisor.backend_name))

        @hookimpl
        def virtabstract_connection_closed(self, hypervisor):
            seen.append(("close", hypervisor.backend_name))

    with virtabstract.connect("tiny://", plugin_manager=manager(TinyPlugin(), Watch())):
        pass
    assert seen == [("open", "tiny"), ("close", "tiny")]


def test_credentials_precedence(monkeypatch):
    pm = manager(TinyPlugin())
    monkeypatch.setenv("VIRTABSTRACT_USERNAME", "envuser")
    monkeypatch.setenv("VIRTABSTRACT_PASSWORD", "envpw")
    with virtabstract.connect("tiny://", plugin_manager=pm) as hv:
        assert hv.backend.credentials.username == "envuser"
        assert hv.backend.credentials.password.reveal() == "envpw"
    with virtabstract.connect("tiny://u:urlpw@h/", plugin_manager=pm) as hv:
        assert hv.backend.credentials.username == "u"
        assert hv.backend.credentials.password.reveal() == "urlpw"
        assert hv.url.password is None and hv.backend.url.password is None
        assert "urlpw" not in repr(hv.backend.credentials)
    with virtabstract.connect("tiny://u:urlpw@h/", plugin_manager=pm, username="arg", password="argpw") as hv:
        assert hv.backend.credentials.username == "arg"
        assert hv.backend.credentials.password.reveal() == "argpw"


def test_every_hook_is_documented():
    specs = [obj for name, obj in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("virtabstract_")]
    assert len(specs) >= 5
    for spec in specs:
        doc = inspect.getdoc(spec) or ""
        assert len(doc) > 80, spec.__name__
        assert "versionadded" in doc, spec.__name__
        for param in inspect.signature(spec).parameters:
            assert f":param {param}:" in doc, (spec.__name__, param)
        assert spec.__name__ in hookspecs.__all__
    from pathlib import Path

    reference = Path(__file__).parents[2] / "docs" / "plugins.md"
    if reference.exists():
        text = reference.read_text()
        for spec in specs:
            assert spec.__name__ in text, f"{spec.__name__} missing from docs/plugins.md"


def test_import_is_lazy_and_loads_no_sdk():
    code = (
        "import sys, virtabstract;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('libvirt', 'pyVmomi', 'pyVim', 'virtualbox', 'vboxapi', 'yaml', 'rich', 'pytest', 'virtabstract_kvm',"
        " 'virtabstract_esxi', 'virtabstract_vbox') or m.startswith('virtabstract.backends.mock.')"
        " or m.startswith('virtabstract.cli') or m.startswith('virtabstract.testing')];"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_operation_hooks_run_in_pluggys_order():
    """The core's direct hook calls keep pluggy's order (LIFO, tryfirst/trylast honoured)."""
    seen = []

    def plugin(label, **opts):
        class Plugin:
            @hookimpl(**opts)
            def virtabstract_before_operation(self, context):
                seen.append(label)

        return Plugin()

    pm = manager(TinyPlugin())
    pm.register(plugin("first", tryfirst=True), name="first")
    pm.register(plugin("a"), name="a")
    pm.register(plugin("b"), name="b")
    pm.register(plugin("last", trylast=True), name="last")
    with virtabstract.connect("tiny://", plugin_manager=pm) as hv:
        hv.vms.list()
        direct = list(seen)
        seen.clear()
        pm.hook.virtabstract_before_operation(context=None)
    assert direct == seen == ["first", "b", "a", "last"]


@pytest.mark.parametrize("also_full", [False, True], ids=["alone", "with-a-full-one"])
def test_after_hook_implementations_may_take_a_subset_of_the_arguments(also_full):
    """As pluggy allows: an implementation declaring only ``context`` or ``error`` gets just that."""
    seen = []

    class ContextOnly:
        @hookimpl
        def virtabstract_after_operation(self, context):
            seen.append(("context", context.operation))

    class ErrorThenContext:
        @hookimpl
        def virtabstract_after_operation(self, error, context):
            seen.append(("error", type(error).__name__, context.operation))

    class Full:
        @hookimpl
        def virtabstract_after_operation(self, context, result, error):
            seen.append(("full", context.operation))

    pm = manager(TinyPlugin())
    pm.register(ContextOnly(), name="context-only")
    if also_full:
        pm.register(Full(), name="full")
    pm.register(ErrorThenContext(), name="error-then-context")
    with virtabstract.connect("tiny://", plugin_manager=pm) as hv:
        with pytest.raises(VMNotFound):
            hv.vms.get("nope")
    got = [entry for entry in seen if entry[-1] == "get_vm"]
    full = [("full", "get_vm")] if also_full else []
    assert got == [("error", "VMNotFound", "get_vm"), *full, ("context", "get_vm")]
