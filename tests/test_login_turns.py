"""The per-worker login queue: at most ``limit`` turns held, the rest served in arrival order."""

from __future__ import annotations

import gevent
import pytest

from flask_wamp_bridge.bridge.login_turns import LoginTurns

pytestmark = pytest.mark.timeout(30)


def test_turns_are_granted_up_to_the_limit_then_queued() -> None:
    turns = LoginTurns(2)
    first, second, third = turns.enter(), turns.enter(), turns.enter()
    assert (first.granted, second.granted, third.granted) == (True, True, False)
    assert (turns.held, turns.waiting) == (2, 1)


def test_a_released_turn_goes_to_the_oldest_waiter_not_to_a_newcomer() -> None:
    turns = LoginTurns(1)
    holder = turns.enter()
    waiters = [turns.enter() for _ in range(3)]
    order: list[int] = []

    def wait(index: int) -> None:
        assert turns.wait(waiters[index], None)
        order.append(index)

    greenlets = [gevent.spawn(wait, i) for i in (2, 0, 1)]  # they start waiting in another order
    gevent.sleep(0)
    turns.release(holder)
    newcomer = turns.enter()  # arrives before the woken waiter runs: it must queue, not take the turn
    assert not newcomer.granted
    for _ in range(3):
        gevent.sleep(0)
        turns.release(waiters[order[-1]])
    gevent.joinall(greenlets, timeout=5)
    assert order == [0, 1, 2]
    assert turns.wait(newcomer, 1) and turns.held == 1 and turns.waiting == 0


def test_a_wait_that_times_out_or_is_woken_leaves_the_queue() -> None:
    turns = LoginTurns(1)
    holder = turns.enter()
    late, gone = turns.enter(), turns.enter()
    assert not turns.wait(late, 0.01)
    gevent.spawn_later(0.01, gone.wake)
    assert not turns.wait(gone, None)
    assert turns.waiting == 0
    turns.release(holder)
    assert turns.held == 0


def test_releasing_twice_or_a_turn_never_granted_changes_nothing() -> None:
    turns = LoginTurns(1)
    holder, waiting = turns.enter(), turns.enter()
    turns.release(waiting)
    assert (turns.held, turns.waiting) == (1, 1)
    turns.release(holder)
    turns.release(holder)
    assert waiting.granted and (turns.held, turns.waiting) == (1, 0)
