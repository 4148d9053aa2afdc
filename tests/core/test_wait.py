import pytest

from virtabstract import ManualClock, wait_until
from virtabstract.errors import OperationTimeout


def test_returns_first_truthy_result():
    clock = ManualClock()
    calls = []

    def probe():
        calls.append(clock.monotonic())
        return "done" if clock.monotonic() >= 1.0 else None

    assert wait_until(probe, timeout=10, what="x", clock=clock) == "done"
    assert calls[0] == 0.0
    assert clock.monotonic() < 3  # back-off stays bounded


def test_times_out_with_message():
    clock = ManualClock()
    with pytest.raises(OperationTimeout, match="waiting for web1 to stop") as info:
        wait_until(lambda: None, timeout=5, what="web1 to stop", clock=clock)
    assert info.value.timeout == 5
    assert clock.monotonic() == pytest.approx(5)


def test_false_means_keep_waiting_and_errors_propagate():
    clock = ManualClock()
    with pytest.raises(OperationTimeout):
        wait_until(lambda: False, timeout=1, what="x", clock=clock)

    def boom():
        raise KeyError("x")

    with pytest.raises(KeyError):
        wait_until(boom, timeout=1, what="x", clock=clock)


def test_manual_clock_never_goes_back():
    clock = ManualClock(5)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    clock.sleep(-3)
    assert clock.monotonic() == 5
