"""Baselines: a subject's day, hour and time of day against its own past, with robust statistics.

``baseline.volume``: per person, project and institution, today's totals (participants behind
results, cells released, bytes out, record-level rows, requests) against the median and MAD of
the subject's past active days, today excluded. ``baseline.cadence``: the person's requests in
the last hour against their past active hours. ``baseline.hours``: a burst of requests at hours
of the day the person has rarely used.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from strongroom.watch.detectors.frames import (
    METERS,
    between,
    daily,
    institution_subject,
    is_request,
    midnight,
    n,
    pct,
    person_subject,
    project_subject,
    requests,
    run_lengths,
)
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.detectors.robust import Bars, bars, median_spread
from strongroom.watch.history import History, Observation
from strongroom.watch.signals import Signal, Subject
from strongroom.watch.states import Severity

WORDS = {
    "participants": "participants behind its results (summed over requests)",
    "cells": "cells released",
    "bytes_out": "bytes sent out",
    "record_rows": "record-level rows exported",
    "requests": "requests",
}


def volume(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """Today's totals far above the subject's past active days."""
    if not is_request(obs):
        return []
    levels: dict[str, tuple[pl.DataFrame, str | None, Subject]] = {
        "person": (history.person, obs.person_id, person_subject(obs)),
        "project": (history.project, obs.project_id, project_subject(obs)),
        "institution": (history.institution, obs.institution_id, institution_subject(obs)),
    }
    found = []
    for level in policy.volume.levels:
        frame, target, subject = levels[level]
        if target is not None:
            signal = _volume_of(obs, history.now, level, target, frame, subject, policy)
            if signal is not None:
                found.append(signal)
    return found


def _volume_of(obs: Observation, now: dt.datetime, level: str, target: str,
               frame: pl.DataFrame, subject: Subject, policy: DetectorPolicy) -> Signal | None:
    p = policy.volume
    today = midnight(now)
    meters = [*METERS, "requests"]
    _, current = daily(between(requests(frame), today))
    if current.shape[0] == 0:
        return None
    totals = current[0]
    if all(totals[i] <= getattr(p.floors, m) for i, m in enumerate(meters)):
        return None  # under every floor: the common case costs a slice and a sum
    _, past = daily(between(requests(frame), today - dt.timedelta(days=p.look_back_days),
                            today))
    days = past.shape[0]
    if days < p.min_days:
        return None
    medians, spreads = median_spread(past)
    over: list[tuple[str, int, Bars]] = []
    for i, meter in enumerate(meters):
        b = bars(float(medians[i]), float(spreads[i]), days, k=p.k, k_extreme=p.k_extreme,
                 ratio=p.ratio, extreme_ratio=p.extreme_ratio, floor=getattr(p.floors, meter),
                 extreme_floor=getattr(p.extreme_floors, meter))
        value = int(totals[i])
        # only a request that adds to the unusual meter renews the signal
        adds = meter == "requests" or getattr(obs, meter) > 0
        if value > b.alert and adds:
            over.append((meter, value, b))
    if not over:
        return None
    extreme = [m for m, v, b in over if v > b.extreme]
    strong = [m for m in extreme if m in p.suspend_meters]
    day = today.date().isoformat()
    reasons = [
        f"On {day} (UTC) {level} {target} has so far {n(v)} {WORDS[m]}; over its "
        f"{b.samples} past active days the median was {n(b.median)} (robust spread "
        f"{n(b.spread)}), so above {n(b.alert)} is unusual and above {n(b.extreme)} extreme."
        for m, v, b in over]
    if strong and days < p.min_days_to_suspend:
        reasons.append(f"The baseline rests on {days} days, fewer than the "
                       f"{p.min_days_to_suspend} needed before it may suspend.")
    return Signal(
        detector="baseline.volume",
        severity=Severity.HIGH if extreme else Severity.MEDIUM,
        subject=subject,
        title=f"unusual daily volume for {level} {target}: "
              + ", ".join(WORDS[m].split(" (")[0] for m, _, _ in over),
        reasons=reasons,
        evidence={"level": level, "day": day, "meters": {
            m: {"today": v, **b.evidence(), "extreme": v > b.extreme} for m, v, b in over}},
        suspend=bool(strong) and days >= p.min_days_to_suspend,
        dedup=f"{level}:{day}")


def cadence(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """Requests in the last hour far above the person's past active hours."""
    p = policy.cadence
    if obs.person_id is None or not is_request(obs):
        return []
    now, today = history.now, midnight(history.now)
    last_hour = between(requests(history.person), now - dt.timedelta(hours=1)).height
    if last_hour <= p.floor:
        return []  # the common case costs a slice
    past = between(requests(history.person), today - dt.timedelta(days=p.look_back_days),
                   today)
    per_hour = run_lengths(past["at"].to_numpy().astype("datetime64[h]"))
    if per_hour.size < p.min_hours:
        return []
    medians, spreads = median_spread(per_hour.reshape(-1, 1).astype(np.float64))
    busiest = int(per_hour.max())
    b = bars(float(medians[0]), float(spreads[0]), per_hour.size, k=p.k,
             k_extreme=p.k_extreme, ratio=p.ratio, extreme_ratio=p.extreme_ratio,
             floor=max(p.floor, p.max_ratio * busiest), extreme_floor=p.extreme_floor)
    if last_hour <= b.alert:
        return []
    extreme = last_hour > b.extreme
    return [Signal(
        detector="baseline.cadence",
        severity=Severity.HIGH if extreme else Severity.MEDIUM,
        subject=person_subject(obs),
        title=f"unusual request rate for person {obs.person_id}: {n(last_hour)} in an hour",
        reasons=[f"Person {obs.person_id} made {n(last_hour)} requests in the last hour; over "
                 f"{b.samples} past active hours the median was {n(b.median)} and the busiest "
                 f"{n(busiest)}, so above {n(b.alert)} is unusual and above {n(b.extreme)} "
                 f"extreme."],
        evidence={"last_hour": last_hour, "busiest_past_hour": busiest, **b.evidence()},
        suspend=extreme,
        dedup=now.strftime("%Y-%m-%dT%H"))]


def hours(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """A burst of requests at hours of the day the person has rarely used."""
    p = policy.hours
    if obs.person_id is None or not is_request(obs):
        return []
    now, today = history.now, midnight(history.now)
    lately = between(requests(history.person), now - dt.timedelta(hours=1))
    if lately.height < p.burst:
        return []  # the common case costs a slice
    stamps = between(requests(history.person), today - dt.timedelta(days=p.look_back_days),
                     today)["at"].to_numpy()
    if stamps.size < p.min_requests:
        return []
    shares = np.bincount(_hour_of_day(stamps), minlength=24) / stamps.size
    if shares[now.hour] >= p.rare_share:
        return []
    active_days = run_lengths(stamps.astype("datetime64[D]")).size
    if active_days < p.min_days:
        return []
    rare = shares < p.rare_share
    burst = int(rare[_hour_of_day(lately["at"].to_numpy())].sum())
    pace = float(np.median(run_lengths(stamps.astype("datetime64[h]"))))
    burst_at = max(p.burst, p.burst_ratio * pace)
    if burst < burst_at:
        return []
    extreme = burst >= p.extreme_burst
    usual = _hour_ranges([h for h in range(24) if not rare[h]])
    return [Signal(
        detector="baseline.hours",
        severity=Severity.HIGH if extreme else Severity.MEDIUM,
        subject=person_subject(obs),
        title=f"off-hours burst for person {obs.person_id}: {n(burst)} requests at "
              f"{now.hour:02d}:00 UTC",
        reasons=[f"Person {obs.person_id} made {n(burst)} requests in the last hour at hours "
                 f"they rarely use: {now.hour:02d}:00–{(now.hour + 1) % 24:02d}:00 UTC held "
                 f"{pct(float(shares[now.hour]))} of their {n(stamps.size)} requests over "
                 f"{active_days} past active days (rare: under {pct(p.rare_share)}); their "
                 f"usual hours are {usual} UTC, at a median of {n(pace)} requests an active "
                 f"hour (a burst is {n(burst_at)}+)."],
        evidence={"hour": now.hour, "hour_share": round(float(shares[now.hour]), 4),
                  "burst": burst, "burst_at": burst_at, "usual_pace": pace,
                  "extreme_at": p.extreme_burst,
                  "past_requests": int(stamps.size), "past_days": active_days,
                  "usual_hours": usual},
        suspend=extreme,
        dedup=now.strftime("%Y-%m-%dT%H"))]


def _hour_of_day(stamps: np.ndarray) -> np.ndarray:
    return (stamps.astype("datetime64[h]").astype(np.int64) % 24).astype(np.intp)


def _hour_ranges(hours_used: list[int]) -> str:
    """[8, 9, 10, 14] → "08:00–11:00, 14:00–15:00"."""
    if not hours_used:
        return "none"
    spans: list[list[int]] = []
    for h in hours_used:
        if spans and spans[-1][1] == h:
            spans[-1][1] = h + 1
        else:
            spans.append([h, h + 1])
    return ", ".join(f"{a:02d}:00–{b % 24:02d}:00" for a, b in spans)
