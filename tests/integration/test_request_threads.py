"""Requests waiting out their answers' moments hold up no one else's.

Every route is synchronous, so each request holds one of anyio's threads while it runs, and
a request touching data sleeps on its thread until its answer's moment. With anyio's default
of 40 threads, 40 requests waiting out their floors (any project's) made every other request
queue behind them: one person's burst held up everyone, and a free request's latency told how
many of others' requests were waiting. Guarantee under test: *a request waits for no thread
while fewer than ``REQUEST_THREADS`` requests are in flight*; the truth (how many were
sleeping) is the test's own.
"""

from __future__ import annotations

import threading
import time

import anyio.to_thread
from fastapi.testclient import TestClient

from strongroom.server.app import REQUEST_THREADS, create_app

WAITING = 60  # more than anyio's default of 40


async def _tokens() -> float:
    return anyio.to_thread.current_default_thread_limiter().total_tokens


def test_requests_waiting_for_their_moment_hold_up_no_other_request() -> None:
    app = create_app(None)
    release = threading.Event()
    asleep: list[int] = []

    @app.get("/waiting")
    def waiting() -> dict[str, bool]:  # as a request sleeps until its answer's moment
        asleep.append(1)
        return {"answered": release.wait(30)}

    with TestClient(app) as client:
        assert client.portal.call(_tokens) == REQUEST_THREADS
        senders = [threading.Thread(target=client.get, args=("/waiting",))
                   for _ in range(WAITING)]
        for sender in senders:
            sender.start()
        deadline = time.monotonic() + 30
        while len(asleep) < WAITING and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            assert len(asleep) == WAITING  # every one on a thread of its own, all at once
            started = time.monotonic()
            assert client.get("/health").status_code == 200
            took = time.monotonic() - started
        finally:
            release.set()
            for sender in senders:
                sender.join(30)
    assert took < 5, f"a request waited {took:.1f} s behind {WAITING} sleeping ones"
