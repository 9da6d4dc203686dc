"""The reconnect-storm harness: a small crowd, a restarting server, accepts counted per window.

Only ratios with generous margins are asserted: these tests share two cores with everything else, and
a starved event loop smears every timing, but it cannot make a jittered crowd arrive in one block.
"""

from __future__ import annotations

import random

import matplotlib
import pytest

from wslab import Lab
from wslab.backoff import FixedBackoff, FullJitterBackoff
from wslab.clients import ClientState, ReconnectingClient
from wslab.storm import (
    AcceptCounter,
    FlapResult,
    StormResult,
    ensure_fd_limit,
    flapping_server,
    reconnect_storm,
    storm_policies,
)
from wslab.wire import CloseCode

matplotlib.use("Agg")


def test_counts_per_window_and_peak() -> None:
    result = StormResult(
        "x", clients=4, window=0.1, accepts=(0.05, 0.31, 0.33, 0.39), attempts=6, waits=(0.15, 0.15, 0.2)
    )
    assert result.counts() == [1, 0, 0, 3]
    assert result.peak == 3 and result.came_back == 4 and result.refused == 2
    assert result.wait_counts() == [0, 2, 1] and result.wait_peak == 2
    assert StormResult("x", 0, 0.1, (), 0).counts() == [] and StormResult("x", 0, 0.1, (), 0).peak == 0


def test_policies_are_scaled_and_seeded_per_client() -> None:
    policies = storm_policies()
    assert policies["fixed"](0).delay(5) == policies["fixed"](1).delay(0) == 0.25  # 0.5 s at 1/2
    assert policies["exponential"](0).delay(2) == 1.0
    jitter = policies["full jitter"]
    assert jitter(3).delay(4) == jitter(3).delay(4)  # same client, same seed: reproducible
    assert jitter(3).delay(4) != jitter(4).delay(4)  # different clients: different moments


def test_fd_limit_is_at_least_what_was_asked() -> None:
    assert ensure_fd_limit(64) >= 64


@pytest.mark.anyio
async def test_full_jitter_cuts_the_peak() -> None:
    policies = storm_policies()
    async with Lab() as lab:
        fixed = await reconnect_storm(lab, "fixed", policies["fixed"], clients=50)
        jitter = await reconnect_storm(lab, "full jitter", policies["full jitter"], clients=50)
    assert fixed.came_back == 50
    assert jitter.came_back >= 25  # the horizon cuts jitter's long tail, not its bulk
    assert fixed.refused >= 50  # the server was really down when the crowd first came back
    # what the server saw: smeared by a busy CPU, so only the direction is asserted
    assert jitter.peak < fixed.peak, (fixed.counts(), jitter.counts())
    # what the policies chose: exact, so the margin can be wide
    assert len(fixed.waits) == 50 and fixed.wait_peak > 25
    assert jitter.wait_peak * 3 <= fixed.wait_peak, (fixed.wait_counts(), jitter.wait_counts())


@pytest.mark.anyio
async def test_flapping_server_resetting_on_open_multiplies_attempts() -> None:
    async with Lab() as lab:
        eager = await flapping_server(lab, stable_after=0)
        careful = await flapping_server(lab, stable_after=10)
    assert eager.clients == careful.clients == 2
    assert eager.attempts >= 3 * careful.attempts, (eager, careful)
    # the same seeded RNG: only the bounds differ, so the first delays are the same draw
    assert eager.delays[0][0] == careful.delays[0][0]
    assert max(max(d) for d in eager.delays) <= 0.5 < max(careful.delays[0])
    # exact, whatever the CPU did: a second run chooses the very same delays
    async with Lab() as lab:
        again = await flapping_server(lab, stable_after=0)
    assert again.delays == eager.delays


def test_attempts_are_counted_from_the_chosen_delays() -> None:
    result = FlapResult(stable_after=0, duration=1.0, delays=((0.4, 0.4, 0.4), (2.0,)))
    assert result.attempts == (1 + 2) + 1


@pytest.mark.anyio
async def test_accept_counter_flaps_then_holds() -> None:
    async with Lab() as lab:
        counter = AcceptCounter(close_with=CloseCode.SERVICE_RESTART, flaps=1)
        server = await lab.serve(counter, name="flap-once")
        client = ReconnectingClient(server.ws_url("/ws"), "c", lab.events, policy=FixedBackoff(0.01)).start()
        try:
            while client.connections < 2:
                await client.wait_for_state(ClientState.OPEN)
                if client.connections < 2:
                    await client.wait_for_state(ClientState.BACKING_OFF)
            await client.wait_for_state(ClientState.OPEN)
            assert client.close_codes == [CloseCode.SERVICE_RESTART] and len(counter.accepted) == 2
        finally:
            await client.close()


def test_viz_helpers_plot_what_they_are_given() -> None:
    from wslab import viz

    fig = viz.plot_schedules({"fixed": [1.0, 1.0], "jitter": [0.2, 0.9]})
    assert [list(line.get_ydata()) for line in fig.axes[0].lines] == [[1.0, 1.0], [0.2, 0.9]]
    fig = viz.plot_histograms({"a": [1, 3], "b": [2]}, bin_width=0.1, xlabel="s")
    assert len(fig.axes) == 2 and [p.get_height() for p in fig.axes[0].patches] == [1, 3]
    fig = viz.plot_bars({"a": 2, "b": 5}, ylabel="n")
    assert [p.get_height() for p in fig.axes[0].patches] == [2, 5]
    import matplotlib.pyplot as plt

    plt.close("all")
    assert FullJitterBackoff(rng=random.Random(1)).delay(0) <= 0.5
