"""AdmissionControl (catalogue F17): at most N new WebSockets per window reach the app; the rest get 1013."""

from __future__ import annotations

import pytest

from wslab import Lab
from wslab.admission import AdmissionControl
from wslab.backoff import decide
from wslab.storm import AcceptCounter
from wslab.wire import CloseCode

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_admits_at_most_limit() -> None:
    clock = Clock()
    gate = AdmissionControl(AcceptCounter(), limit=3, window=1.0, clock=clock)
    assert [gate.try_admit() for _ in range(5)] == [True, True, True, False, False]
    clock.now += 0.5
    assert not gate.try_admit()  # still inside the window of the first three
    clock.now += 0.5
    assert [gate.try_admit() for _ in range(4)] == [True, True, True, False]
    assert gate.admitted == 6


def test_rejects_nonsense_limits() -> None:
    with pytest.raises(ValueError):
        AdmissionControl(AcceptCounter(), limit=0, window=1.0)
    with pytest.raises(ValueError):
        AdmissionControl(AcceptCounter(), limit=1, window=0)


async def test_over_the_limit_is_closed_1013_before_the_app_runs() -> None:
    refusals: list[str] = []
    async with Lab() as lab:
        counter = AcceptCounter()
        gate = AdmissionControl(counter, limit=2, window=60.0, report=lambda kind, msg: refusals.append(kind))
        server = await lab.serve(gate, name="gated")
        first = await lab.connect(server.ws_url("/ws"), name="first")
        second = await lab.connect(server.ws_url("/ws"), name="second")
        third = await lab.connect(server.ws_url("/ws"), name="third")
        await third.wait_closed()
        assert third.close_code == CloseCode.TRY_AGAIN_LATER
        assert decide(third.close_code).slow_down  # clients following decide() back off harder
        assert len(counter.accepted) == 2  # the app never saw the third
        assert (gate.admitted, gate.refused, refusals) == (2, 1, ["refused"])
        assert first.close_code is None and second.close_code is None
