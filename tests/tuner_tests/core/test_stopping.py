import os
import signal

import pytest

from tuner.core import stopping


@pytest.fixture(autouse=True)
def _sigint_to_stopping():
    stopping.clear()
    before = signal.signal(signal.SIGINT, lambda signum, frame: stopping.on_signal())
    yield
    signal.signal(signal.SIGINT, before)
    stopping.clear()


def test_a_signal_raises_at_once_outside_deferred_sections():
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
    assert stopping.requested()


def test_a_signal_in_a_deferred_section_is_only_recorded_and_interruptible_work_inside_raises():
    with stopping.deferred():
        os.kill(os.getpid(), signal.SIGINT)
        assert stopping.requested()
        with pytest.raises(KeyboardInterrupt), stopping.interruptible():
            os.kill(os.getpid(), signal.SIGINT)
        # Back in the deferred section after the interruptible one ended by the interrupt.
        os.kill(os.getpid(), signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
