"""The per-candidate time limit: raised in Python code, held back inside native callbacks."""

from __future__ import annotations

import time

import pytest

from tuner.runtime.timelimit import TrialTimeout, deferred, expired, stop_if_expired, time_limit


def test_the_limit_interrupts_python_code() -> None:
    t0 = time.perf_counter()
    with pytest.raises(TrialTimeout, match="0.2 s time limit"), time_limit(0.2):
        while True:
            time.sleep(0.01)
    assert time.perf_counter() - t0 < 5
    assert not expired()


def test_deferred_holds_the_timeout_until_the_block_ends() -> None:
    reached_end_of_block = False
    with pytest.raises(TrialTimeout), time_limit(0.1):
        with deferred():
            time.sleep(0.3)  # the alarm fires here, but only marks the limit as passed
            assert expired()
            reached_end_of_block = True
    assert reached_end_of_block


def test_stop_if_expired_raises_inside_deferred_without_a_second_timeout() -> None:
    with pytest.raises(TrialTimeout) as info, time_limit(0.1):
        with deferred():
            time.sleep(0.3)
            stop_if_expired()
    assert info.value.__context__ is None


def test_no_limit_no_timeout() -> None:
    with time_limit(None) as enforced, deferred():
        time.sleep(0.01)
        stop_if_expired()
    assert enforced is False
