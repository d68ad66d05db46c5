"""The detectors' policy as data: every threshold, and which detectors may suspend by themselves.

Each detector reads its own section. Thresholds are chosen so that a normal workload
(researchers working office hours with day-to-day variation, busy days, conference trips)
suspends nobody, while the attacks the simulation injects are alerted, and the clear ones
suspended. Why each number is what it is: docs/explanation/watch-detectors.md.

Two words used throughout:

- *alert* (medium): worth a look by a person; nothing is stopped.
- *extreme* (high): strong evidence; the detector asks for suspension when its name is in
  :attr:`DetectorPolicy.auto_suspend` (and, for baselines, when the subject has enough history
  for the comparison to mean something).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Every detector, by name (the registry in strongroom.watch.detectors must hold exactly these;
# a test checks both ways).
ALL_DETECTORS: tuple[str, ...] = (
    "baseline.volume", "baseline.cadence", "baseline.hours",
    "coverage.allowance", "coverage.sweep",
    "queries.rewording", "queries.reconstruction", "queries.differencing",
    "queries.near-threshold", "queries.overrun",
    "network.new", "network.travel", "network.token-replay",
    "accounts.new-accounts", "accounts.refused-token", "accounts.auth-failures",
    "jobs.sandbox", "jobs.shape",
)


@dataclass(frozen=True)
class Floors:
    """A level per meter: below it a day is never unusual, whatever the baseline says (a
    subject whose median is zero would otherwise be flagged for anything at all)."""

    participants: int  # distinct contributors, summed over the day's requests
    cells: int  # cells released (downloads)
    bytes_out: int
    record_rows: int  # record-level rows exported
    requests: int  # requests of any kind (security events are not requests)


@dataclass(frozen=True)
class VolumePolicy:
    """``baseline.volume``: a day's totals against the subject's past active days."""

    levels: tuple[str, ...] = ("person", "project", "institution")
    look_back_days: int = 60
    min_days: int = 7  # past active days before judging at all
    min_days_to_suspend: int = 14  # past active days before an extreme day may suspend
    # alert above median + k × robust spread (1.4826 × MAD) and at least ratio × the median:
    # a busy day is about three times the usual work, and what it releases varies more than
    # that (one busy day in forty reaches eight times the median); an exfiltration is many
    # times more
    k: float = 10.0
    k_extreme: float = 25.0
    ratio: float = 8.0  # (the ratio is what guards a very steady subject, whose MAD is ~0)
    extreme_ratio: float = 15.0
    floors: Floors = Floors(participants=1_000_000, cells=2_000, bytes_out=20_000_000,
                            record_rows=1_000, requests=500)
    extreme_floors: Floors = Floors(participants=20_000_000, cells=10_000,
                                    bytes_out=100_000_000, record_rows=10_000, requests=5_000)
    # what leaves (rows, cells, bytes) may suspend; counts of work done (participants behind
    # analyses, requests) only alert: a big analysis releases aggregates, not people
    suspend_meters: tuple[str, ...] = ("record_rows", "cells", "bytes_out")


@dataclass(frozen=True)
class CadencePolicy:
    """``baseline.cadence``: requests in the last hour against the person's past active hours."""

    look_back_days: int = 30
    min_hours: int = 20  # past active hours before judging
    k: float = 8.0
    k_extreme: float = 25.0
    ratio: float = 4.0  # and at least this many times the past median hour …
    max_ratio: float = 1.5  # … and this many times the busiest past hour
    extreme_ratio: float = 10.0
    floor: int = 120  # requests in an hour: two a minute is never unusual
    extreme_floor: int = 1_000


@dataclass(frozen=True)
class HoursPolicy:
    """``baseline.hours``: a burst of requests in hours of the day the person rarely uses."""

    look_back_days: int = 60
    min_days: int = 10  # past active days …
    min_requests: int = 50  # … and requests, before an hour can be called rare (an hour none
    # of 50 requests fell in is credibly under 6 % of the work: a burst of 30 there is not chance)
    rare_share: float = 0.01  # an hour holding under 1 % of past requests is rare
    burst: int = 30  # requests in rare hours within the last hour, and at least …
    burst_ratio: float = 2.5  # … this many times the person's median active hour (a script
    # that runs all day works at its own pace when its owner travels)
    extreme_burst: int = 300


@dataclass(frozen=True)
class LifetimePolicy:
    """``coverage.lifetime``: when, at the pace of the last ``pace_days``, a project, the person
    it goes to or their institution reaches the participants it may ever receive record-level
    (run by the gate at every record-level export, watch/forecast.py)."""

    enabled: bool = True
    pace_days: int = 14
    warn_days: float = 30.0  # an alert when the allowance is this near at that pace …
    suspend_days: float = 7.0  # … and a suspension, before it is crossed
    # a high alert once this share of a lifetime allowance is taken, whatever the pace: a
    # geometric drip (most of what is left, each fortnight) never looks a week away
    near_share: float = 0.8


@dataclass(frozen=True)
class CoveragePolicy:
    """``coverage.allowance`` and ``coverage.sweep``: distinct participants a project received
    record-level in 30 days."""

    # the project's allowance when the history does not say (the hard limit's default,
    # strongroom.watch.policy.PROJECT_DEFAULT; a test keeps the two equal)
    default_allowance: int = 20_000
    # shares of the allowance: low, medium, high
    levels: tuple[float, float, float] = (0.25, 0.5, 0.8)
    cohort_share: float = 0.1  # this share of the whole cohort is high, whatever the allowance
    # a sweep: exports on several days that keep reaching participants not exported before;
    # (days with record-level exports in 30 days, distinct participants as a share of the
    # allowance): four days and a fifth of it, or two days and two fifths
    sweeps: tuple[tuple[int, float], ...] = ((4, 0.2), (2, 0.4))
    sweep_novelty: float = 0.8  # distinct exposed ÷ participants summed over the exports
    # a rush: the same within an hour — this many exports reaching this share of the
    # allowance (a paged bulk export; one large export is the hard limit's business, and a
    # large job is declared in advance)
    rush: tuple[int, float] = (4, 0.5)
    rush_minutes: int = 60


@dataclass(frozen=True)
class RewordingPolicy:
    """``queries.rewording``: many exact queries sharing one shape (constants changed)."""

    window_minutes: int = 60
    look_back_days: int = 30
    alert: int = 25  # distinct queries of one shape in the window …
    extreme: int = 60
    past_ratio: float = 2.0  # … and this many times the person's busiest past hour of it
    extreme_past_ratio: float = 4.0


@dataclass(frozen=True)
class ReconstructionPolicy:
    """``queries.reconstruction``: far more analyses than usual, each over few people."""

    look_back_days: int = 60
    min_days: int = 5  # past active days before judging (before it, only narrow and extreme)
    # a busy day is about three times the usual analyses: unusual from six times (and ten
    # spreads), extreme from twelve (and twenty)
    k: float = 10.0
    k_extreme: float = 20.0
    ratio: float = 6.0
    extreme_ratio: float = 12.0
    floor: int = 60  # analyses in a day
    extreme_floor: int = 150
    # narrow results (what makes many analyses extreme): a median of at most ``narrow``
    # participants each, or of at most ``narrow_share`` of the person's usual median, or
    # near-threshold cells in at least ``narrow_cells_share`` of the day's analyses
    narrow: int = 1_000
    narrow_share: float = 0.1
    narrow_cells_share: float = 0.3


@dataclass(frozen=True)
class DifferencingPolicy:
    """``queries.differencing``: requests the output check found differencing in (it blocked
    them).

    Against what was already released, one can be an accident and several are an attempt.
    Between one output's own cells (``count(*)`` beside ``avg(x)`` where a few have no x)
    it is the common mistake of an honest sitting that steps one query through its bands,
    and nothing was released to subtract from: many such requests are worth a look, never
    a suspension by themselves.
    """

    window_hours: int = 24
    alert: int = 2
    extreme: int = 3
    within_alert: int = 10


@dataclass(frozen=True)
class NearThresholdPolicy:
    """``queries.near-threshold``: many analyses whose cells are just over the disclosure
    threshold (the mark of a tracker: small populations made to pass one cell at a time).
    The share is of analyses showing any such cell, since the cells an analysis shows are
    not metered (released cells are, at download)."""

    window_hours: int = 24
    look_back_days: int = 30
    alert_cells: int = 20  # near-threshold cells in the window …
    alert_share: float = 0.3  # … in this share of the analyses …
    past_ratio: float = 3.0  # … and this many times the person's own past share
    extreme_cells: int = 40  # extreme: this many near-threshold cells, and either …
    extreme_share: float = 0.5  # … this share of analyses, or …
    extreme_past_ratio: float = 10.0  # … this many times a past share resting on …
    # … at least this many analyses; a past share is of at least this many (fewer past
    # analyses: the missing ones count as showing none)
    min_past_analyses: int = 50


@dataclass(frozen=True)
class NetworkPolicy:
    """``network.new``, ``network.travel``, ``network.token-replay``."""

    ipv4_prefix: int = 24
    ipv6_prefix: int = 48
    min_days: int = 5  # past active days before a network can be called new
    fresh_hours: int = 24  # a network first seen this recently is still new
    usual_days: int = 2  # a network seen on this many past days is one of the person's own
    travel_minutes: int = 10  # two networks within this is "impossible travel"
    replay_minutes: int = 10
    replay_each: int = 3  # requests from each of two networks …
    replay_switches: int = 3  # … interleaved (the network changes this many times)


@dataclass(frozen=True)
class AccountsPolicy:
    """``accounts.new-accounts``, ``accounts.refused-token``, ``accounts.auth-failures``."""

    new_hour: int = 5  # new accounts in one institution within an hour …
    new_day: int = 10  # … or within a day
    failure_minutes: int = 15
    person_failures: int = 5  # failed sign-ins or codes for one person
    mfa_failures: int = 3  # failed second factors for one person: the password was right
    source_failures: int = 10  # failures from one address …
    source_accounts: int = 3  # … across this many accounts (password spraying)
    expired_repeat: int = 5  # uses of an expired token in a day before it is medium


@dataclass(frozen=True)
class JobShapePolicy:
    """``jobs.shape``: jobs whose real run ended otherwise than their dummy run (each one an
    alert, being the mark of a job's answer asked for on purpose), and jobs seen to end at a
    late step of the ladder (an honest job can run late; repeats alert)."""

    window_days: int = 7
    diverged_extreme: int = 3  # such jobs in the window: high (suspends if in auto_suspend)
    late_alert: int = 3  # late jobs in the window: medium …
    late_extreme: int = 6  # … and high


@dataclass(frozen=True)
class OverrunPolicy:
    """``queries.overrun``: analyses whose run passed their schedule's floor and were answered
    at a later step (outputs/timing.py). Each such answer's step is about the data and costs
    an answer; an honest heavy analysis can overrun now and then (a loaded machine), so only
    repeats in a day alert. Not in ``auto_suspend``: the ration already bounds what the steps
    can tell; the alert asks a person to read the queries."""

    window_hours: int = 24
    alert: int = 3  # overruns of one person in the window: medium …
    extreme: int = 6  # … and high (suspends only if the custodian adds it to auto_suspend)


@dataclass(frozen=True)
class CorroborationPolicy:
    """Several detectors on one request: suspension even if none is extreme alone.

    Detectors are counted by group, so that two views of the same thing (a busy day is both
    more volume and a faster cadence) count once.
    """

    enabled: bool = True
    groups: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("volume", ("baseline.volume", "baseline.cadence", "queries.reconstruction")),
        ("repetition", ("queries.rewording",)),
        ("disclosure", ("queries.differencing", "queries.near-threshold",
                        "queries.overrun")),
        ("coverage", ("coverage.allowance", "coverage.sweep")),
        ("place", ("network.new", "network.travel", "network.token-replay")),
        ("time", ("baseline.hours",)),
        ("accounts", ("accounts.new-accounts", "accounts.refused-token",
                      "accounts.auth-failures")),
        ("sandbox", ("jobs.sandbox", "jobs.shape")),
    )
    medium_groups: int = 3  # groups at medium or above …
    high_groups: int = 2  # … or groups at high or above


@dataclass(frozen=True)
class DetectorPolicy:
    """Which detectors run, which may suspend, and every threshold they use."""

    enabled: frozenset[str] = frozenset(ALL_DETECTORS)
    # detectors whose strong evidence suspends automatically; the others only alert
    auto_suspend: frozenset[str] = frozenset({
        "baseline.volume", "coverage.sweep", "queries.rewording", "queries.reconstruction",
        "queries.differencing", "queries.near-threshold", "network.token-replay",
        "accounts.refused-token",
    })
    # while an approved declared job of the project is in force, these detectors report at
    # low severity and never suspend (the job is the large volume they would see)
    declared_job_caps: frozenset[str] = frozenset({
        "baseline.volume", "baseline.cadence", "coverage.allowance", "coverage.sweep",
        "queries.rewording", "queries.reconstruction",
    })
    volume: VolumePolicy = field(default_factory=VolumePolicy)
    cadence: CadencePolicy = field(default_factory=CadencePolicy)
    hours: HoursPolicy = field(default_factory=HoursPolicy)
    coverage: CoveragePolicy = field(default_factory=CoveragePolicy)
    lifetime: LifetimePolicy = field(default_factory=LifetimePolicy)
    rewording: RewordingPolicy = field(default_factory=RewordingPolicy)
    reconstruction: ReconstructionPolicy = field(default_factory=ReconstructionPolicy)
    differencing: DifferencingPolicy = field(default_factory=DifferencingPolicy)
    near_threshold: NearThresholdPolicy = field(default_factory=NearThresholdPolicy)
    network: NetworkPolicy = field(default_factory=NetworkPolicy)
    accounts: AccountsPolicy = field(default_factory=AccountsPolicy)
    job_shape: JobShapePolicy = field(default_factory=JobShapePolicy)
    overrun: OverrunPolicy = field(default_factory=OverrunPolicy)
    corroboration: CorroborationPolicy = field(default_factory=CorroborationPolicy)
