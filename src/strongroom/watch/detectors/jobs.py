"""``jobs.sandbox``: a job that tried its sandbox's walls.

The walls hold whatever a job tries (jobs/sandbox.py): there is no network to reach and no
other program worth starting. A try is still worth a person's look, since nothing in an honest
analysis needs either; it alerts at high severity and, by default, does not suspend (the
custodian may add it to ``auto_suspend`` in watch.yaml).
"""

from __future__ import annotations

from strongroom.watch.detectors.frames import person_subject
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.history import History, Observation
from strongroom.watch.signals import Signal
from strongroom.watch.states import Severity


def sandbox(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    if obs.walls <= 0 or obs.person_id is None:
        return []
    return [Signal(
        detector="jobs.sandbox",
        severity=Severity.HIGH,
        subject=person_subject(obs),
        title=f"a job of person {obs.person_id} tried its sandbox's walls {obs.walls} times",
        reasons=[f"A job run for person {obs.person_id} tried {obs.walls} times to reach the "
                 "network or start another program inside its sandbox. The walls held and "
                 "nothing left, but no honest analysis needs either: read the job's code "
                 "(its SHA-256 is in the audit log) and ask the researcher why."],
        evidence={"tries": obs.walls, "route": obs.route},
        dedup=f"{obs.route}|{obs.at.date().isoformat()}")]
