"""SIGINT/SIGTERM during training: a flag between steps, an abandoned step inside one, passed on after saving."""

import os
import signal

import pytest

from gptkit.train.signals import Abandoned, StopSignal


def test_a_signal_becomes_a_flag_and_is_passed_on_to_the_previous_handler():
    seen = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: seen.append(signum))
    try:
        with StopSignal() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.received == "SIGTERM" and seen == []  # the run goes on to save first
        assert signal.getsignal(signal.SIGTERM) is not stop._handle  # the handler before it is back
        stop.pass_on()
        assert seen == [signal.SIGTERM]
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_signal_inside_an_abandonable_step_abandons_it():
    with StopSignal() as stop:
        with pytest.raises(Abandoned), stop.abandonable(True):
            os.kill(os.getpid(), signal.SIGINT)
        assert stop.received == "SIGINT"
        with stop.abandonable(False):  # under DDP a step is never abandoned: ranks must agree
            os.kill(os.getpid(), signal.SIGINT)
    stop.received = None
    stop.pass_on()  # nothing received: nothing to pass on
