"""A job's life as data: its statuses and the moves between them (a test checks the table).

QUEUED when submitted and its pipeline accepted; RUNNING while the sandbox runs it (on the
dummy data, then the real); then FINISHED (it ran, and its outputs were checked), FAILED (it
stopped at an error or a wall: the reason is kept) or REFUSED (the platform would not run it
or let its outputs out: a plan that depends on the data, a project paused meanwhile).
"""

from __future__ import annotations

from enum import StrEnum

from strongroom.errors import Conflict


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    REFUSED = "refused"


MOVES: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.REFUSED}),
    JobStatus.RUNNING: frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.REFUSED}),
    JobStatus.FINISHED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.REFUSED: frozenset(),
}
ENDED = frozenset(s for s, onward in MOVES.items() if not onward)


def move(current: str, target: JobStatus) -> JobStatus:
    """``target`` if a job in ``current`` may move there (Conflict, with why, if not)."""
    now = JobStatus(current)
    if target not in MOVES[now]:
        raise Conflict(f"a {now.value} job cannot become {target.value}")
    return target
