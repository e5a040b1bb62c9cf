"""Time left of a long step: none while too early to say, steady-pace estimates after, and
a restart when the next stage begins."""

from __future__ import annotations

import pytest

from engine.support.eta import Eta, eta_text


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_estimate_follows_the_pace_and_restarts_with_the_next_stage():
    clock = Clock()
    eta = Eta(clock)
    assert eta.update(0.0) is None
    clock.now += 0.5
    assert eta.update(0.10) is None  # under a second: too early
    clock.now += 9.5
    assert eta.update(0.25) == pytest.approx(30.0)  # 10 s for a quarter: 30 s to go
    assert eta.update(1.0) is None  # done
    clock.now += 2.0
    assert eta.update(0.01) is None  # a new stage began, too little of it done yet
    clock.now += 4.0
    assert eta.update(0.5) == pytest.approx(4.0)


def test_eta_text_reads_as_minutes_and_hours():
    assert eta_text(None) == ""
    assert eta_text(65.2) == " · ETA 1:05"
    assert eta_text(3725) == " · ETA 1:02:05"
