"""Queries: patterns in what a person asks, read from digests and counts, never from a query's
text or an answer.

``queries.rewording``: many exact queries sharing one shape (the same query with its constants
changed) within an hour. ``queries.reconstruction``: far more analyses than the person's usual
day; with narrow results (few participants each, or near-threshold cells) answers to many
questions can rebuild records.
``queries.differencing``: the output check found differencing against what was released in
several requests (many requests blocked for differencing between an output's own cells alert).
``queries.near-threshold``: many analyses showing cells just over the disclosure threshold
(a tracker: small populations made to pass one cell at a time).
``queries.overrun``: analyses that repeatedly ran past their schedule's floor and were answered
at a later step (timing bisection: an expensive branch taken only on one person's row).
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from strongroom.watch.detectors.frames import (
    between,
    midnight,
    n,
    pct,
    person_subject,
    run_lengths,
)
from strongroom.watch.detectors.policy import DetectorPolicy, DifferencingPolicy
from strongroom.watch.detectors.robust import bars, median_spread
from strongroom.watch.history import History, Observation
from strongroom.watch.signals import Signal
from strongroom.watch.states import Severity

ANALYSE = "data.analyse"


def rewording(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """Many distinct queries of one shape in the window, against the person's busiest past
    hour of any one shape."""
    p = policy.rewording
    if obs.person_id is None or obs.query_shape is None:
        return []
    now = history.now
    start = now - dt.timedelta(minutes=p.window_minutes)
    distinct = (between(history.person, start)
                .filter(pl.col("query_shape") == obs.query_shape)
                .select(pl.col("query_digest").drop_nulls().n_unique()).item())
    if distinct < p.alert:
        return []
    past = (between(history.person, now - dt.timedelta(days=p.look_back_days), start)
            .filter(pl.col("query_shape").is_not_null())
            .group_by("query_shape", pl.col("at").dt.truncate("1h"))
            .agg(pl.col("query_digest").n_unique().alias("distinct")))
    busiest = int(past["distinct"].max() or 0) if not past.is_empty() else 0  # type: ignore[arg-type]
    alert_at = max(p.alert, p.past_ratio * busiest)
    extreme_at = max(p.extreme, p.extreme_past_ratio * busiest)
    if distinct < alert_at:
        return []
    extreme = distinct >= extreme_at
    return [Signal(
        detector="queries.rewording",
        severity=Severity.HIGH if extreme else Severity.MEDIUM,
        subject=person_subject(obs),
        title=f"flood of reworded queries from person {obs.person_id}: {n(distinct)} of one "
              f"shape",
        reasons=[f"Person {obs.person_id} sent {n(distinct)} different queries of one shape "
                 f"(the same query with its constants changed) in the last "
                 f"{p.window_minutes} minutes; their busiest past hour held {n(busiest)} of "
                 f"one shape, so {n(alert_at)} is unusual and {n(extreme_at)} extreme. "
                 f"Rewordings probe one result from many sides, or page through data."],
        evidence={"shape": obs.query_shape, "distinct_queries": distinct,
                  "window_minutes": p.window_minutes, "busiest_past_hour": busiest,
                  "alert_at": alert_at, "extreme_at": extreme_at},
        suspend=extreme,
        dedup=obs.query_shape)]


def reconstruction(obs: Observation, history: History,
                   policy: DetectorPolicy) -> list[Signal]:
    """Far more analyses today than the person's usual day (medium); extreme (high), and
    suspending when the results are narrow."""
    p = policy.reconstruction
    if obs.person_id is None or obs.action != ANALYSE:
        return []
    today = midnight(history.now)
    analysed = (pl.col("action") == ANALYSE) & (pl.col("participants") > 0)
    current = between(history.person, today).filter(analysed)
    if current.height <= p.floor:
        return []  # the common case costs a slice and a small filter
    past = between(history.person, today - dt.timedelta(days=p.look_back_days),
                   today).filter(analysed)
    per_day = run_lengths(past["at"].to_numpy().astype("datetime64[D]"))
    days = per_day.size
    medians, spreads = median_spread(per_day.reshape(-1, 1).astype(np.float64))
    b = bars(float(medians[0]), float(spreads[0]), days, k=p.k, k_extreme=p.k_extreme,
             ratio=p.ratio, extreme_ratio=p.extreme_ratio, floor=p.floor,
             extreme_floor=p.extreme_floor)
    if current.height <= b.alert:
        return []
    width = float(np.median(current["participants"].to_numpy()))
    usual_width = float(np.median(past["participants"].to_numpy())) if past.height else 0.0
    narrow_at = max(p.narrow, p.narrow_share * usual_width)
    near_share = float((current["near_threshold"].to_numpy() > 0).mean())
    narrow = width <= narrow_at or near_share >= p.narrow_cells_share
    extreme = current.height > b.extreme
    if days < p.min_days and not (extreme and narrow):
        return []  # without a baseline only the floors speak: heavy newcomers are not news
    reasons = [f"Person {obs.person_id} ran {n(current.height)} analyses today; over "
               f"{days} past active days the median was {n(b.median)} (robust spread "
               f"{n(b.spread)}), so above {n(b.alert)} is unusual and above {n(b.extreme)} "
               f"extreme.",
               f"Today's analyses are {'narrow' if narrow else 'broad'}: a median of "
               f"{n(width)} participants each (usually {n(usual_width)}; narrow is at most "
               f"{n(narrow_at)}), {pct(near_share)} of them showing near-threshold cells "
               f"(narrow from {pct(p.narrow_cells_share)}). Answers to many narrow questions "
               f"can be combined to rebuild records."]
    if extreme and narrow and days < p.min_days:
        reasons.append(f"The baseline rests on {days} days, fewer than the "
                       f"{p.min_days} needed before it may suspend.")
    return [Signal(
        detector="queries.reconstruction",
        severity=Severity.HIGH if extreme else Severity.MEDIUM,
        subject=person_subject(obs),
        title=f"many {'narrow ' if narrow else ''}analyses by person {obs.person_id}: "
              f"{n(current.height)} today",
        reasons=reasons,
        evidence={"analyses_today": current.height, "median_participants": width,
                  "usual_median_participants": usual_width, "narrow_at": narrow_at,
                  "near_threshold_share": round(near_share, 4), "narrow": narrow,
                  **b.evidence()},
        suspend=extreme and narrow and days >= p.min_days,
        dedup=today.date().isoformat())]


def differencing(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """Several requests in a day in which the output check found differencing against what
    was released (or many in which it found it between an output's own cells)."""
    if obs.person_id is None:
        return []
    return [*_against_released(obs, history, policy.differencing),
            *_within(obs, history, policy.differencing)]


def _day_with(history: History, p: DifferencingPolicy, column: str) -> pl.DataFrame:
    """The person's requests in the window in which the check found ``column`` > 0."""
    start = history.now - dt.timedelta(hours=p.window_hours)
    return between(history.person, start).filter(pl.col(column) > 0)


def _against_released(obs: Observation, history: History,
                      p: DifferencingPolicy) -> list[Signal]:
    if obs.differencing <= 0:  # most requests: nothing to read
        return []
    hits = _day_with(history, p, "differencing")
    if hits.height < p.alert:
        return []
    extreme = hits.height >= p.extreme
    finds = int(hits["differencing"].sum())
    return [Signal(
        detector="queries.differencing",
        severity=Severity.HIGH if extreme else Severity.MEDIUM,
        subject=person_subject(obs),
        title=f"repeated differencing attempts by person {obs.person_id}: {hits.height} "
              f"requests",
        reasons=[f"In the last {p.window_hours} hours the output check found differencing "
                 f"({n(finds)} findings) in {hits.height} of person {obs.person_id}'s "
                 f"requests: results that, subtracted from ones already released, would "
                 f"single out a few participants. One can be an accident; {p.alert} is "
                 f"unusual and {p.extreme} an attempt."],
        evidence={"requests": hits.height, "findings": finds, "window_hours": p.window_hours,
                  "alert_at": p.alert, "extreme_at": p.extreme},
        suspend=extreme,
        dedup=midnight(history.now).date().isoformat())]


def _within(obs: Observation, history: History, p: DifferencingPolicy) -> list[Signal]:
    if obs.differencing_within <= 0:
        return []
    hits = _day_with(history, p, "differencing_within")
    if hits.height < p.within_alert:
        return []
    return [Signal(
        detector="queries.differencing",
        severity=Severity.MEDIUM,
        subject=person_subject(obs),
        title=f"many outputs of person {obs.person_id} blocked for differencing between "
              f"their own cells: {hits.height} requests",
        reasons=[f"In the last {p.window_hours} hours the output check blocked "
                 f"{hits.height} of person {obs.person_id}'s requests because two cells of "
                 f"one output differ by a few participants (such as a count beside a mean "
                 f"that a few lack). Usually an honest sitting that repeats one mistake; "
                 f"as an oracle it would answer whether two groups differ by a few, so it "
                 f"is worth a look from {p.within_alert}. Nothing was released and this "
                 f"alone never suspends."],
        evidence={"requests": hits.height,
                  "findings": int(hits["differencing_within"].sum()),
                  "window_hours": p.window_hours, "alert_at": p.within_alert},
        dedup="within|" + midnight(obs.at).date().isoformat())]


def near_threshold(obs: Observation, history: History,
                   policy: DetectorPolicy) -> list[Signal]:
    """Many analyses showing cells just over the disclosure threshold, well above the
    person's own past share."""
    p = policy.near_threshold
    if obs.person_id is None or obs.near_threshold <= 0:
        return []
    now = history.now
    start = now - dt.timedelta(hours=p.window_hours)
    near, showing, analyses, width = _near(between(history.person, start))
    share = showing / analyses if analyses else 0.0
    if near < p.alert_cells or share < p.alert_share:
        return []
    _, past_showing, past_analyses, _ = _near(
        between(history.person, now - dt.timedelta(days=p.look_back_days), start))
    # a habit is read from enough analyses: below ``min_past_analyses`` the missing ones
    # count as showing none, so one sparse table among a newcomer's four (or a tracker's
    # few primed ones) does not set their bar at three times a quarter
    past_share = past_showing / max(past_analyses, p.min_past_analyses)
    if share < p.past_ratio * past_share:
        return []
    extreme = near >= p.extreme_cells and (share >= p.extreme_share or (
        past_analyses >= p.min_past_analyses and share >= p.extreme_past_ratio * past_share))
    return [Signal(
        detector="queries.near-threshold",
        severity=Severity.HIGH if extreme else Severity.MEDIUM,
        subject=person_subject(obs),
        title=f"many near-threshold cells for person {obs.person_id}: {n(near)} in "
              f"{pct(share)} of analyses",
        reasons=[f"In the last {p.window_hours} hours {n(showing)} of person "
                 f"{obs.person_id}'s {n(analyses)} analyses ({pct(share)}) showed cells just "
                 f"over the disclosure threshold, {n(near)} such cells in all, over a median "
                 f"of {n(width)} participants; in the {p.look_back_days} days before, "
                 f"{pct(past_share)} of their {n(past_analyses)} analyses did. Unusual from "
                 f"{n(p.alert_cells)} cells in {pct(p.alert_share)} of analyses, extreme from "
                 f"{n(p.extreme_cells)} cells in {pct(p.extreme_share)} (or "
                 f"{p.extreme_past_ratio:g} times the past share): a tracker makes small "
                 f"groups pass one cell at a time."],
        evidence={"near_threshold": near, "analyses": analyses, "showing": showing,
                  "share": round(share, 4), "past_share": round(past_share, 4),
                  "past_analyses": past_analyses, "median_participants": width,
                  "window_hours": p.window_hours},
        suspend=extreme,
        dedup=midnight(now).date().isoformat())]


def _near(frame: pl.DataFrame) -> tuple[int, int, int, float]:
    """Near-threshold cells, analyses showing any, analyses, and the median participants
    of those showing any."""
    rows = frame.filter((pl.col("action") == ANALYSE) | (pl.col("near_threshold") > 0))
    if rows.is_empty():
        return 0, 0, 0, 0.0
    near = rows["near_threshold"].to_numpy()
    showing = near > 0
    width = float(np.median(rows["participants"].to_numpy()[showing])) if showing.any() \
        else 0.0
    return int(near.sum()), int(showing.sum()), rows.height, width


# a job's own meter row (jobs/service.py ROUTE): its lateness is ``jobs.shape``'s; the analyses
# it plans are metered under this route with " sdc" added, and are analyses like any other
JOB_ROUTE = "JOB /projects/{project_id}/jobs"


def overrun(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """``queries.overrun``: a person's analyses that passed their schedule's floor, again and
    again in a day.

    An analysis is answered at the first step of its schedule its run reached
    (outputs/timing.py): at the floor unless it ran past it. The step it was answered at is
    then an answer about the data, and spends one; an attacker bisecting a participant's value
    on response time (an expensive expression evaluated only on their row, only when the value
    is over a line) makes run after run overrun. One overrun is a loaded machine or a heavy
    model; several in a day alert, more are high."""
    if obs.person_id is None or obs.late <= 0 or obs.route == JOB_ROUTE:
        return []
    p = policy.overrun
    now = history.now
    rows = between(history.person, now - dt.timedelta(hours=p.window_hours))
    if rows.height:
        rows = rows.filter((pl.col("late") > 0) & (pl.col("route") != JOB_ROUTE))
    late = max(rows.height, 1)
    if late < p.alert:
        return []
    high = late >= p.extreme
    routes = sorted(set(rows["route"].to_list())) if rows.height else [obs.route]
    return [Signal(
        detector="queries.overrun",
        severity=Severity.HIGH if high else Severity.MEDIUM,
        subject=person_subject(obs),
        title=f"analyses of person {obs.person_id} ran past their time floor {late} times in "
              f"{p.window_hours} hours",
        reasons=[f"{late} analyses run for person {obs.person_id} in the last "
                 f"{p.window_hours} hours ran past their schedule's floor and were answered at "
                 "a later step. Which step is an answer about the data: a query that does "
                 "expensive work only on one participant's row, only when their value is over "
                 "a line, reads that value off the response time. Each cost an answer; "
                 f"repeats look like the clock being read on purpose (alert from {p.alert}, "
                 f"high from {p.extreme}): read the queries (their digests are in the meter) "
                 "and ask the researcher why."],
        evidence={"late": late, "window_hours": p.window_hours, "routes": routes},
        suspend=high, dedup=midnight(now).date().isoformat())]
