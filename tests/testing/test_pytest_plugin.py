"""The opt-in pytest plugin (``pytest_plugins = ["virtabstract.testing"]``) and the contract suite's teeth."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import virtabstract
from virtabstract.errors import UsageError

pytest_plugins = ["pytester"]

BROKEN_BACKENDS = '''
import pytest

import virtabstract
from virtabstract import Capability, PluginManager, hookimpl
from virtabstract.backends.mock._backend import MockBackend
from virtabstract.testing.contract import ErrorsContract, PowerContract, SnapshotContract


class PauseDoesNothing(MockBackend):
    """pause() 'succeeds' without pausing: a silent success."""

    name = "pausenoop"

    def pause(self, vm_id):
        self._enter("pause", vm_id)


class RevertForgetsConfig(MockBackend):
    """revert_snapshot() restores the power state but not the configuration."""

    name = "revertlazy"

    def revert_snapshot(self, vm_id, snapshot_id):
        with self._txn() as doc:
            rec = self._rec(doc, vm_id)
            self._find_snapshot(rec, snapshot_id)
            self._to_stopped(rec)
            rec["current_snapshot"] = snapshot_id


class UnderDeclares(MockBackend):
    """Does not declare PAUSE, yet pauses happily instead of raising UnsupportedOperation."""

    name = "underdeclares"

    def connection_capabilities(self):
        return super().connection_capabilities() - {Capability.PAUSE}


class Register:
    @hookimpl
    def virtabstract_register_backends(self, register):
        register("pausenoop", PauseDoesNothing)
        register("revertlazy", RevertForgetsConfig)
        register("underdeclares", UnderDeclares)


PM = PluginManager(autoload=False)
PM.register(Register(), name="broken-backends")


def connect(scheme):
    return virtabstract.connect(f"{scheme}://?clock=manual", plugin_manager=PM)


class TestHonestMock(PowerContract, SnapshotContract, ErrorsContract):
    @pytest.fixture
    def hypervisor(self):
        with virtabstract.connect("mock://?clock=manual", plugin_manager=PM) as hv:
            yield hv


class TestPauseDoesNothing(PowerContract):
    @pytest.fixture
    def hypervisor(self):
        with connect("pausenoop") as hv:
            yield hv


class TestRevertForgetsConfig(SnapshotContract):
    @pytest.fixture
    def hypervisor(self):
        with connect("revertlazy") as hv:
            yield hv


class TestUnderDeclares(ErrorsContract):
    @pytest.fixture
    def hypervisor(self):
        with connect("underdeclares") as hv:
            yield hv
'''


def _outcomes(reprec: pytest.HookRecorder) -> tuple[set[str], set[str], set[str]]:
    passed, skipped, failed = reprec.listoutcomes()
    names = lambda reports: {r.nodeid.split("::", 1)[1] for r in reports}  # noqa: E731
    return names(passed), names(skipped), names(failed)


# -- the plugin's fixtures ------------------------------------------------------------------------


def test_plugin_fixtures_and_fault_helpers(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        import pytest
        from virtabstract import ManualClock, PowerState
        from virtabstract.errors import ConnectionLost, InvalidState, OperationTimeout
        from virtabstract.testing import (
            agent_absent, clear_faults, crash_vm, expire_session, fault_stats, ignore_shutdown,
            inject_delay, inject_fault,
        )

        pytest_plugins = ["virtabstract.testing"]


        def test_mock_hypervisor(mock_hypervisor):
            assert mock_hypervisor.backend_name == "mock"
            assert str(mock_hypervisor.url).startswith("mock://")
            assert len(mock_hypervisor.vms) == 0


        def test_mock_clock(mock_hypervisor, mock_clock):
            assert isinstance(mock_clock, ManualClock)
            assert mock_hypervisor.backend.clock is mock_clock
            before = mock_clock.monotonic()
            mock_clock.advance(30)
            assert mock_clock.monotonic() == before + 30


        def test_vm_factory_names(mock_hypervisor, vm_factory):
            first, second = vm_factory(), vm_factory(cpus=2, start=True)
            assert first.name != second.name
            assert first.name.startswith(vm_factory.prefix) and vm_factory.prefix.startswith("vatest-")
            assert second.info().cpus == 2
            assert second.state is PowerState.RUNNING
            assert first.hypervisor is mock_hypervisor


        def test_inject_fault(mock_hypervisor, vm_factory):
            vm = vm_factory()
            inject_fault(mock_hypervisor, "start", times=1, error=ConnectionLost)
            with pytest.raises(ConnectionLost):
                vm.start()
            assert vm.state is PowerState.STOPPED        # the fault hit before any effect
            vm.start()                                   # only once
            assert vm.state is PowerState.RUNNING
            stats = fault_stats(mock_hypervisor)
            assert stats.calls["start"] == 2
            assert stats.injected_failures == 1


        def test_inject_fault_for_one_vm(mock_hypervisor, vm_factory):
            a, b = vm_factory(), vm_factory()
            inject_fault(mock_hypervisor, "start", times=None, error=InvalidState, vm=a)
            b.start()
            with pytest.raises(InvalidState):
                a.start()
            with pytest.raises(InvalidState):
                a.start()
            clear_faults(mock_hypervisor)
            a.start()


        def test_delay_moves_the_manual_clock(mock_hypervisor, mock_clock, vm_factory):
            vm = vm_factory()
            inject_delay(mock_hypervisor, "start", 5.0, times=1)
            before = mock_clock.monotonic()
            vm.start()
            assert mock_clock.monotonic() - before == 5.0


        def test_session_expiry(mock_hypervisor):
            expire_session(mock_hypervisor)
            mock_hypervisor.vms.list()
            assert fault_stats(mock_hypervisor).relogins == 1
            expire_session(mock_hypervisor, relogin=False)
            with pytest.raises(ConnectionLost):
                mock_hypervisor.vms.list()


        def test_guest_faults(mock_hypervisor, vm_factory):
            vm = vm_factory(start=True)
            agent_absent(mock_hypervisor, vm)
            with pytest.raises(OperationTimeout):
                vm.guest.wait_ready(timeout=5)
            agent_absent(mock_hypervisor, vm, absent=False)
            assert vm.guest.wait_ready(timeout=5).ready
            ignore_shutdown(mock_hypervisor, vm)
            with pytest.raises(OperationTimeout):
                vm.shutdown(timeout=10)
            assert vm.shutdown(timeout=10, force=True).stage == "forced"
            vm.start()
            crash_vm(mock_hypervisor, vm)
            assert vm.state is PowerState.CRASHED


        def test_mock_faults_fixture(mock_hypervisor, mock_faults, vm_factory):
            assert mock_faults is mock_hypervisor.backend.faults
            mock_faults.fail("create")
            with pytest.raises(ConnectionLost):
                vm_factory()
            assert len(mock_hypervisor.vms) == 0
        """
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=9)


def test_vm_factory_cleans_up_after_a_failing_test(pytester: pytest.Pytester, tmp_path: Path) -> None:
    lab = tmp_path / "lab.json"
    pytester.makepyfile(
        test_user=f"""
        import pytest
        import virtabstract

        pytest_plugins = ["virtabstract.testing"]
        URL = {"mock://" + lab.as_posix()!r}


        @pytest.fixture
        def lab():
            with virtabstract.connect(URL, clock="manual") as hv:
                yield hv


        def test_fails_midway(lab, vm_factory):
            running = vm_factory(hypervisor=lab, start=True)
            paused = vm_factory(hypervisor=lab, start=True)
            paused.pause()
            suspended = vm_factory(hypervisor=lab, start=True)
            suspended.suspend()
            vm_factory(hypervisor=lab)
            assert len(lab.vms) == 4
            raise AssertionError("the test fails; its VMs must still go")
        """
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    with virtabstract.connect("mock://" + lab.as_posix()) as hv:
        assert hv.vms.list_info() == []


def test_vm_factory_default_hypervisor_is_cleaned_before_it_closes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        pytest_plugins = ["virtabstract.testing"]
        STORES = []


        def test_creates(vm_factory):
            vm = vm_factory(start=True)
            STORES.append(vm.hypervisor.backend.store)
            assert STORES[0].data["vms"]


        def test_previous_vms_were_deleted():
            assert STORES[0].data["vms"] == {}
        """
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    assert "cannot clean up" not in result.stdout.str() + result.stderr.str()


def test_vm_factory_reports_leaks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user="""
        from virtabstract.testing import inject_fault
        from virtabstract.errors import BackendError

        pytest_plugins = ["virtabstract.testing"]


        def test_delete_keeps_failing(mock_hypervisor, vm_factory):
            vm_factory()
            inject_fault(mock_hypervisor, "delete", times=None, error=BackendError)
        """
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test VMs could not be removed*BackendError*"])


def test_marker_is_registered_under_strict_markers(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["virtabstract.testing"]')
    pytester.makepyfile(
        test_user="""
        import pytest


        @pytest.mark.virtabstract_backend("mock")
        def test_marked(mock_hypervisor):
            assert mock_hypervisor.backend_name == "mock"
        """
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=1)


def test_fault_helpers_refuse_other_backends() -> None:
    from virtabstract.testing import faults_of, inject_fault

    class NotMock:
        backend_name = "kvm"
        backend = object()
        url = "qemu:///system"

    with pytest.raises(UsageError, match="mock://"):
        faults_of(NotMock())  # type: ignore[arg-type]
    with pytest.raises(UsageError):
        inject_fault(NotMock(), "start")  # type: ignore[arg-type]


# -- the contract suite -------------------------------------------------------------------------


def test_contract_detects_broken_backends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken=BROKEN_BACKENDS)
    reprec = pytester.inline_run("-p", "no:cacheprovider")
    passed, skipped, failed = _outcomes(reprec)
    # the honest mock passes everything it runs
    assert not {n for n in failed if n.startswith("TestHonestMock::")}, failed
    assert "TestHonestMock::test_power_pause_resume" in passed
    # each broken backend is caught by exactly the tests that check what it breaks
    assert failed == {
        "TestPauseDoesNothing::test_power_pause_resume",
        "TestPauseDoesNothing::test_power_off_paused",
        "TestRevertForgetsConfig::test_snapshot_revert_restores_config",
        "TestRevertForgetsConfig::test_snapshot_revert_to_older",
        "TestRevertForgetsConfig::test_snapshot_with_memory",
        "TestUnderDeclares::test_errors_undeclared_capabilities_raise_unsupported",
    }
    # … while the rest of their contract still passes, or skips with a reason
    assert "TestPauseDoesNothing::test_power_start" in passed
    assert "TestRevertForgetsConfig::test_snapshot_delete" in passed
    assert "TestUnderDeclares::test_errors_duplicate_name" in passed
    assert any(n.startswith("TestUnderDeclares::test_errors_invalid_transition[pause-") for n in skipped)


def test_contract_failure_messages_name_the_problem(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_broken=BROKEN_BACKENDS)
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "-k", "TestUnderDeclares and undeclared or TestPauseDoesNothing and pause_resume"
    )
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*timed out after 60s waiting for VM * to be paused*",
            "*PAUSE: pause raised InvalidState: cannot pause VM*",
        ]
    )


def test_contract_without_hypervisor_fixture_fails_clearly(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_forgot="""
        from virtabstract.testing.contract import InventoryContract


        class TestForgot(InventoryContract):
            pass
        """
    )
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", "-k", "host_info")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*TestForgot must override the 'hypervisor' fixture*"])


def test_contract_skips_name_the_capability(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_narrow="""
        import pytest
        import virtabstract
        from virtabstract.testing.contract import PowerContract


        class TestNarrow(PowerContract):
            @pytest.fixture
            def hypervisor(self):
                with virtabstract.connect("mock://?clock=manual&capabilities=-pause") as hv:
                    yield hv
        """
    )
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*SKIPPED*the mock backend does not declare PAUSE (pause)*"])
    assert result.ret == 0


# -- import hygiene -------------------------------------------------------------------------------


def _run(code: str) -> None:
    subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True, timeout=60)


def test_import_virtabstract_does_not_import_pytest_or_the_kit() -> None:
    _run(
        """
        import sys
        import virtabstract
        assert "virtabstract.testing" not in sys.modules
        assert "pytest" not in sys.modules and "_pytest" not in sys.modules
        """
    )


def test_testing_kit_imports_no_sdk() -> None:
    _run(
        """
        import sys
        import virtabstract.testing
        import virtabstract.testing.contract
        for sdk in ("libvirt", "pyVmomi", "pyVim", "virtualbox", "vboxapi"):
            assert sdk not in sys.modules, sdk
        """
    )
