"""Detectors of networks and accounts: each against an attack and against normal life (a new
address on the office network, office plus VPN, compute nodes sharing a token, a forgotten
script with an expired token, a mistyped code)."""

from __future__ import annotations

import datetime as dt

import pytest

from strongroom.watch.history import Observation
from strongroom.watch.states import Severity
from tests.unit.watch_patterns import (
    ELSEWHERE,
    HOTEL,
    NOW,
    OFFICE,
    VPN,
    Researcher,
    judge,
    last,
    named,
    normal_days,
    spaced,
)

ALICE = Researcher()
TOKEN_ROUTE = "GET /projects/{project_id}/analyses"


@pytest.fixture(scope="module")
def history() -> list[Observation]:
    """Alice's 60 days: office addresses, the VPN on some days (at least three)."""
    usual = normal_days(ALICE, until=NOW - dt.timedelta(hours=2))
    vpn = [ALICE.obs(NOW - dt.timedelta(days=d, hours=3), source=VPN) for d in (20, 13, 6)]
    return sorted([*usual, *vpn], key=lambda o: o.at)


# -- network.new -----------------------------------------------------------------------------

def test_a_new_network_is_reported_at_low_severity(history: list[Observation]) -> None:
    (signal,) = named(judge(ALICE.obs(NOW, source=HOTEL), history), "network.new")
    assert signal.severity is Severity.LOW and not signal.suspend
    assert signal.evidence["network"] == "203.0.113.0/24"
    assert "192.0.2.0/24" in signal.evidence["usual"]
    # the whole first day on it stays new (so it can join other signals)
    earlier = ALICE.obs(NOW - dt.timedelta(hours=1), source=HOTEL)
    (later,) = named(judge(ALICE.obs(NOW, source="203.0.113.77"), [*history, earlier]),
                     "network.new")
    assert later.evidence["requests_from_it"] == 2


def test_another_address_on_a_known_network_is_not_new(history: list[Observation]) -> None:
    assert not named(judge(ALICE.obs(NOW, source="192.0.2.200"), history), "network.new")
    assert not named(judge(ALICE.obs(NOW, source=VPN), history), "network.new")


def test_ipv6_networks_are_compared_by_their_48_bit_prefix() -> None:
    past = [ALICE.obs(NOW - dt.timedelta(days=d), source="2001:db8:1:2::5")
            for d in range(1, 9)]
    same = ALICE.obs(NOW, source="2001:db8:1:ffff::9")
    assert not named(judge(same, past), "network.new")
    (signal,) = named(judge(ALICE.obs(NOW, source="2001:db8:2::1"), past), "network.new")
    assert signal.evidence["network"] == "2001:db8:2::/48"


def test_a_newcomer_has_no_known_networks_to_compare_with() -> None:
    past = [ALICE.obs(NOW - dt.timedelta(days=d), source=OFFICE[0]) for d in (2, 1)]
    assert not named(judge(ALICE.obs(NOW, source=HOTEL), past), "network.new")


def test_failed_sign_ins_do_not_make_a_network_known(history: list[Observation]) -> None:
    probes = [ALICE.obs(NOW - dt.timedelta(days=d), "auth.mfa.failed", route="wrong code",
                        status=401, source=HOTEL) for d in range(2, 12)]
    assert named(judge(ALICE.obs(NOW, source=HOTEL), [*history, *probes]), "network.new")


# -- network.travel --------------------------------------------------------------------------

def test_two_places_within_minutes_is_impossible_travel(history: list[Observation]) -> None:
    office = ALICE.obs(NOW - dt.timedelta(minutes=4), source=OFFICE[1])
    (signal,) = named(judge(ALICE.obs(NOW, source=ELSEWHERE), [*history, office]),
                      "network.travel")
    assert signal.severity is Severity.MEDIUM and not signal.suspend
    assert signal.evidence["unusual"] == ["100.64.7.0/24"]
    assert len(signal.evidence["networks"]) == 2


def test_office_and_vpn_within_minutes_is_not_travel(history: list[Observation]) -> None:
    office = ALICE.obs(NOW - dt.timedelta(minutes=3), source=OFFICE[0])
    assert not named(judge(ALICE.obs(NOW, source=VPN), [*history, office]), "network.travel")
    earlier = ALICE.obs(NOW - dt.timedelta(minutes=30), source=OFFICE[0])
    assert not named(judge(ALICE.obs(NOW, source=HOTEL), [*history, earlier]),
                     "network.travel")  # half an hour is a train ride, not two places


# -- network.token-replay --------------------------------------------------------------------

def token_use(sources: list[str], start: dt.datetime = NOW - dt.timedelta(minutes=8),
              every: dt.timedelta = dt.timedelta(seconds=40)) -> list[Observation]:
    """The token used from each source in turn; from outside the institution's networks the
    token is refused (as access/auth.py records it)."""
    return [ALICE.obs(at, route=TOKEN_ROUTE, via="token", token_id=ALICE.token_id, source=src)
            if src in OFFICE else
            ALICE.obs(at, "auth.token.refused", status=401, token_id=ALICE.token_id,
                      source=src, via=None,
                      route="it is being used from outside Uni's registered networks")
            for at, src in zip(spaced(start, len(sources), every), sources, strict=True)]


def test_a_stolen_token_replayed_while_its_owner_works_is_caught(
        history: list[Observation]) -> None:
    obs, before = last(token_use([OFFICE[0], ELSEWHERE] * 5))
    (signal,) = named(judge(obs, [*history, *before]), "network.token-replay")
    assert signal.severity is Severity.HIGH and signal.suspend
    assert signal.evidence["switches"] >= 3 and signal.evidence["refused"] == 5
    assert signal.evidence["networks"] == ["100.64.7.0/24", "192.0.2.0/24"]


def test_compute_nodes_sharing_a_token_on_one_network_are_not_a_replay(
        history: list[Observation]) -> None:
    obs, before = last(token_use([OFFICE[0], OFFICE[1], OFFICE[2]] * 4))
    assert not named(judge(obs, [*history, *before]), "network.token-replay")


def test_a_token_that_moves_once_is_not_a_replay(history: list[Observation]) -> None:
    moved = token_use([OFFICE[0]] * 4) + [
        ALICE.obs(NOW - dt.timedelta(seconds=40 * (4 - i)), route=TOKEN_ROUTE, via="token",
                  token_id=ALICE.token_id, source="192.0.3.5") for i in range(4)]
    obs, before = last(sorted(moved, key=lambda o: o.at))
    assert not named(judge(obs, [*history, *before]), "network.token-replay")


# -- accounts.new-accounts -------------------------------------------------------------------

def created(count: int, start: dt.datetime, institution: str = "ins_uni",
            every: dt.timedelta = dt.timedelta(minutes=5)) -> list[Observation]:
    return [Observation(at=at, action="person.created", route="", status=201,
                        person_id=f"per_new{i}", institution_id=institution)
            for i, at in enumerate(spaced(start, count, every))]


@pytest.mark.parametrize(("count", "severity"), [(6, Severity.MEDIUM), (12, Severity.HIGH)])
def test_many_new_accounts_in_one_institution_are_reported(count: int,
                                                           severity: Severity) -> None:
    obs, before = last(created(count, NOW - dt.timedelta(minutes=count * 5 - 5)))
    (signal,) = named(judge(obs, before), "accounts.new-accounts")
    assert signal.severity is severity and not signal.suspend
    assert signal.subject.institution_id == "ins_uni" and signal.subject.person_id is None


def test_a_few_new_accounts_or_accounts_elsewhere_are_not() -> None:
    obs, before = last(created(3, NOW - dt.timedelta(hours=5), every=dt.timedelta(hours=2)))
    assert not named(judge(obs, before), "accounts.new-accounts")
    elsewhere = created(8, NOW - dt.timedelta(minutes=40), institution="ins_other")
    obs, before = last([*elsewhere, *created(1, NOW)])
    assert not named(judge(obs, before), "accounts.new-accounts")


# -- accounts.refused-token ------------------------------------------------------------------

def refused(why: str, source: str = OFFICE[0], at: dt.datetime = NOW) -> Observation:
    """A refused token as watch meters it: the event's ``why`` in ``route`` (auth.py)."""
    return ALICE.obs(at, "auth.token.refused", route=why, status=401,
                     token_id=ALICE.token_id, source=source, via=None, project_id=None)


REVOKED = "it was revoked on 2026-03-10 17:02 UTC"
EXPIRED = "it expired on 2026-03-01 00:00 UTC"
OUTSIDE = "it is being used from outside Uni's registered networks"


def test_a_revoked_institutions_token_is_high(history: list[Observation]) -> None:
    (signal,) = named(judge(refused(REVOKED), history), "accounts.refused-token")
    assert signal.severity is Severity.HIGH and signal.evidence["kind"] == "revoked"
    assert not signal.suspend  # from its owner's network: may be a script left running


def test_a_revoked_token_from_a_foreign_network_suspends(history: list[Observation]) -> None:
    (signal,) = named(judge(refused(REVOKED, ELSEWHERE), history), "accounts.refused-token")
    assert signal.severity is Severity.HIGH and signal.suspend
    assert signal.evidence["foreign_network"] is True


def test_an_expired_token_is_low_until_it_keeps_coming(history: list[Observation]) -> None:
    (once,) = named(judge(refused(EXPIRED), history), "accounts.refused-token")
    assert once.severity is Severity.LOW and not once.suspend
    again = [refused(EXPIRED, at=at) for at in spaced(NOW - dt.timedelta(hours=5), 5,
                                                     dt.timedelta(hours=1))]
    obs, before = last(again)
    (often,) = named(judge(obs, [*history, *before]), "accounts.refused-token")
    assert often.severity is Severity.MEDIUM and often.evidence["uses_last_day"] == 5


def test_a_token_tried_off_network_is_medium(history: list[Observation]) -> None:
    (signal,) = named(judge(refused(OUTSIDE, HOTEL), history), "accounts.refused-token")
    assert signal.severity is Severity.MEDIUM and signal.evidence["kind"] == "off-network"


def test_a_token_that_works_is_not_reported(history: list[Observation]) -> None:
    ok = ALICE.obs(NOW, route=TOKEN_ROUTE, via="token", token_id=ALICE.token_id)
    assert not named(judge(ok, history), "accounts.refused-token")


# -- accounts.auth-failures ------------------------------------------------------------------

def failures(action: str, count: int, source: str = HOTEL,
             people: tuple[str | None, ...] = ("per_alice",)) -> list[Observation]:
    return [Observation(at=at, action=action, route="wrong code", status=401,
                        person_id=people[i % len(people)], source=source,
                        institution_id="ins_uni" if people[i % len(people)] else None)
            for i, at in enumerate(spaced(NOW - dt.timedelta(minutes=10), count,
                                          dt.timedelta(seconds=30)))]


def test_second_factor_failures_after_a_right_password_are_high() -> None:
    obs, before = last(failures("auth.mfa.failed", 3))
    (signal,) = named(judge(obs, before), "accounts.auth-failures")
    assert signal.severity is Severity.HIGH and signal.evidence["mfa_failures"] == 3
    assert not signal.suspend  # lockout stops guessing; suspension would let anyone lock out


def test_failed_passwords_are_medium() -> None:
    obs, before = last(failures("auth.login.failed", 5))
    (signal,) = named(judge(obs, before), "accounts.auth-failures")
    assert signal.severity is Severity.MEDIUM and signal.evidence["failures"] == 5


def test_password_spraying_from_one_address_is_high() -> None:
    obs, before = last(failures("auth.login.failed", 12, source=ELSEWHERE,
                                people=("per_a", "per_b", "per_c", None)))
    signals = named(judge(obs, before), "accounts.auth-failures")
    (spray,) = [s for s in signals if "source" in s.evidence]
    assert spray.severity is Severity.HIGH and spray.evidence["accounts"] == 4
    assert spray.evidence["failures"] == 12


def test_a_couple_of_mistyped_codes_are_not_reported() -> None:
    obs, before = last(failures("auth.mfa.failed", 2))
    assert not named(judge(obs, before), "accounts.auth-failures")
    obs, before = last(failures("auth.login.failed", 4))
    assert not named(judge(obs, before), "accounts.auth-failures")
