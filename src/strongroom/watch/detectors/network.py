"""Networks: where a person's requests come from, compared at prefix level (/24 for IPv4, /48
for IPv6), without geolocation.

``network.new``: a network the person has not used before (alert only: conferences and trains
are new networks). ``network.travel``: "impossible travel" without geolocation, defined as the
same person active from two different networks within minutes, at least one of which is not
one of their usual networks (office plus VPN is two usual networks, not travel).
``network.token-replay``: one API token used from two networks concurrently: requests from
each, interleaved, within minutes (a stolen token replayed while its owner still uses it).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from strongroom.watch.detectors.frames import (
    SERVED_REQUEST,
    between,
    is_request,
    n,
    person_subject,
    requests,
)
from strongroom.watch.detectors.policy import DetectorPolicy
from strongroom.watch.detectors.prefixes import prefix, with_prefix
from strongroom.watch.history import History, Observation
from strongroom.watch.signals import Signal
from strongroom.watch.states import Severity


def new_network(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """A request from a network not among those the person used before (not counting the
    last ``fresh_hours``, so the whole first day on a new network is reported as new)."""
    p = policy.network
    if obs.person_id is None or not obs.source or not is_request(obs):
        return []
    network = prefix(obs.source, p.ipv4_prefix, p.ipv6_prefix) or obs.source
    now = history.now
    fresh = now - dt.timedelta(hours=p.fresh_hours)
    past = between(requests(history.person), now - dt.timedelta(days=60), fresh).filter(
        SERVED_REQUEST)
    sources = past["source"].unique().to_list()
    if network in {prefix(s, p.ipv4_prefix, p.ipv6_prefix) for s in sources}:
        return []  # the common case: one filter and a handful of parses
    known = _networks_by_days(past, p.ipv4_prefix, p.ipv6_prefix)
    days = past.select(pl.col("at").dt.date().n_unique()).item()
    if days < p.min_days:
        return []  # everything is new to a newcomer: no baseline yet
    lately = with_prefix(between(history.person, fresh).filter(SERVED_REQUEST),
                         p.ipv4_prefix, p.ipv6_prefix).filter(pl.col("network") == network)
    first = lately.select(pl.col("at").min()).item() if not lately.is_empty() else now
    usual = sorted(known, key=lambda k: -known[k])[:5]
    return [Signal(
        detector="network.new", severity=Severity.LOW, subject=person_subject(obs),
        title=f"person {obs.person_id} is working from a new network {network}",
        reasons=[f"Person {obs.person_id} sent {n(max(lately.height, 1))} requests from "
                 f"{network} since {first:%Y-%m-%d %H:%M} UTC; over {days} past active days "
                 f"they used {len(known)} other network(s) (most used: "
                 f"{', '.join(usual) or 'none'}). A new network alone is common (travel, a "
                 f"conference); it matters with other signals."],
        evidence={"network": network, "known_networks": len(known), "past_days": days,
                  "requests_from_it": lately.height, "usual": usual},
        dedup=network)]


def travel(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """Two networks within ``travel_minutes``, at least one not among the person's usual."""
    p = policy.network
    if obs.person_id is None or not obs.source or not is_request(obs):
        return []
    now = history.now
    start = now - dt.timedelta(minutes=p.travel_minutes)
    window = between(requests(history.person), start)
    sources = window["source"].drop_nulls().unique().to_list()
    networks = sorted({prefix(s, p.ipv4_prefix, p.ipv6_prefix) or s for s in sources})
    if len(networks) < 2:
        return []  # the common case costs a slice and a handful of parses
    window = with_prefix(window.filter(pl.col("source").is_not_null()), p.ipv4_prefix,
                         p.ipv6_prefix)
    past = between(history.person, now - dt.timedelta(days=60),
                   now - dt.timedelta(hours=p.fresh_hours)).filter(SERVED_REQUEST)
    if past.select(pl.col("at").dt.date().n_unique()).item() < p.min_days:
        return []
    seen = _networks_by_days(past, p.ipv4_prefix, p.ipv6_prefix)
    usual = {k for k, days in seen.items() if days >= p.usual_days}
    unusual = [k for k in networks if k not in usual]
    if not unusual:
        return []
    spans = window.group_by("network").agg(pl.col("at").min().alias("first"),
                                           pl.col("at").max().alias("last"), pl.len())
    told = "; ".join(f"{r['network']}: {r['len']} requests {r['first']:%H:%M}–{r['last']:%H:%M}"
                     for r in spans.sort("first").iter_rows(named=True))
    return [Signal(
        detector="network.travel", severity=Severity.MEDIUM, subject=person_subject(obs),
        title=f"person {obs.person_id} active from {len(networks)} networks within "
              f"{p.travel_minutes} minutes",
        reasons=[f"Within {p.travel_minutes} minutes person {obs.person_id} was active from "
                 f"{len(networks)} networks ({told} UTC), and "
                 f"{', '.join(unusual)} is not one they used on {p.usual_days}+ past days. "
                 f"Without geolocation this is what impossible travel looks like: one "
                 f"account in two places at once."],
        evidence={"networks": networks, "unusual": unusual, "minutes": p.travel_minutes,
                  "usual_networks": len(usual)},
        dedup="|".join(networks))]


def token_replay(obs: Observation, history: History, policy: DetectorPolicy) -> list[Signal]:
    """One API token from two networks, interleaved, within ``replay_minutes``."""
    p = policy.network
    if obs.token_id is None or not obs.source:
        return []
    frame = history.person if obs.person_id is not None else history.recent
    rows = between(frame, history.now - dt.timedelta(minutes=p.replay_minutes)).filter(
        (pl.col("token_id") == obs.token_id) & pl.col("source").is_not_null())
    if rows.height < 2 * p.replay_each:
        return []
    rows = with_prefix(rows.sort("at"), p.ipv4_prefix, p.ipv6_prefix)
    counts = rows.group_by("network").agg(pl.len()).filter(pl.col("len") >= p.replay_each)
    if counts.height < 2:
        return []
    switches = int(rows.select((pl.col("network") != pl.col("network").shift(1))
                               .fill_null(False).sum()).item())
    if switches < p.replay_switches:
        return []  # one move (office to another building) is not two users
    refused = rows.filter(pl.col("status") >= 400).height
    per = ", ".join(f"{r['network']}: {r['len']}" for r in counts.iter_rows(named=True))
    return [Signal(
        detector="network.token-replay", severity=Severity.HIGH, subject=person_subject(obs),
        title=f"API token {obs.token_id} used from {counts.height} networks at once",
        reasons=[f"In the last {p.replay_minutes} minutes token {obs.token_id} was used from "
                 f"{counts.height} networks ({per} requests), switching {switches} times "
                 f"back and forth ({refused} of them refused). One script uses one network; "
                 f"two interleaved are two users of one token: a stolen token replayed."],
        evidence={"token": obs.token_id, "networks": sorted(counts["network"].to_list()),
                  "requests": rows.height, "switches": switches, "refused": refused,
                  "minutes": p.replay_minutes},
        suspend=True,
        dedup=obs.token_id)]


def _networks_by_days(frame: pl.DataFrame, v4: int, v6: int) -> dict[str, int]:
    """Each network used in ``frame`` and on how many distinct days."""
    if frame.is_empty():
        return {}
    days = (with_prefix(frame, v4, v6).group_by("network")
            .agg(pl.col("at").dt.date().n_unique().alias("days")))
    return {k: int(d) for k, d in days.iter_rows() if k is not None}
