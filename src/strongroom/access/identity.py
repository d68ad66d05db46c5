"""Identity across accounts: which accounts are one human, who shares one person allowance.

Accounts are the same human when any of these joins them, transitively:

* the same ORCID iD (both accounts have one, and it is the same);
* the same e-mail domain (case-insensitive, after the ``@``) **and** the same name key
  (:func:`strongroom.access.names.name_key`: casefolded, accents stripped, punctuation and
  titles dropped, word order ignored) — unless a custodian has said the two are different
  people (a ``distinct`` link);
* a custodian's ``same`` link.

A person's limits on the watch count usage over all these accounts, and the smallest of their
limits applies: registering twice does not double an allowance. Weaker hints (the same name at
another domain, the same e-mail local part at another domain) join nothing by themselves; the
custodian console lists them for a custodian to link or to mark distinct.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session, aliased

from strongroom.access.authorize import authorize
from strongroom.access.context import AccessContext, Principal
from strongroom.access.models import AccountLink, Person
from strongroom.access.names import email_domain, email_local, optional_orcid
from strongroom.access.permissions import Action
from strongroom.audit import EventType
from strongroom.errors import Conflict, Invalid, NotFound

SAME = "same"
DISTINCT = "distinct"


def _links(db: Session) -> tuple[dict[str, set[str]], set[frozenset[str]]]:
    """The custodians' standing links: who is linked to whom (same), and the pairs said to be
    different people (distinct). Few rows (a custodian writes each), read in one query."""
    same: dict[str, set[str]] = defaultdict(set)
    distinct: set[frozenset[str]] = set()
    for a, b, relation in db.execute(_LINKS):
        if relation == SAME:
            same[a].add(b)
            same[b].add(a)
        else:
            distinct.add(frozenset((a, b)))
    return same, distinct


# built once: an alias and a statement made per call cost more than the query (7 ms to 1 ms)
_MINE, _OTHER = aliased(Person, name="mine"), aliased(Person, name="other")
_ALIKE = (select(_MINE.id, _MINE.email, _MINE.orcid, _OTHER.id, _OTHER.email, _OTHER.orcid)
          .join(_OTHER, or_(_OTHER.name_key == _MINE.name_key, _OTHER.orcid == _MINE.orcid))
          .where(_MINE.id.in_(bindparam("frontier", expanding=True)), _OTHER.id != _MINE.id))
_LINKS = select(AccountLink.person_id, AccountLink.same_as, AccountLink.relation).where(
    AccountLink.ended_at.is_(None))


def _alike(db: Session, frontier: Iterable[str],
           distinct: set[frozenset[str]]) -> set[str]:
    """Accounts the rules join to any of ``frontier``: one indexed self-join (ORCID, name
    key), the domain compared here (it is part of the e-mail, which is indexed whole)."""
    found = set()
    for a, a_email, a_orcid, b, b_email, b_orcid in db.execute(
            _ALIKE, {"frontier": list(frontier)}):
        if a_orcid is not None and a_orcid == b_orcid:
            found.add(b)  # one ORCID is one human, whatever a custodian said of names
        elif email_domain(a_email) == email_domain(b_email) \
                and frozenset((a, b)) not in distinct:
            found.add(b)
    return found


def accounts_of(db: Session, person_id: str) -> tuple[str, ...]:
    """Every account treated as the same human as ``person_id``, sorted, itself included (an
    unknown id is only itself). Called on every limit check: a query for the links, then one
    indexed self-join per step out (usually two: the matches, then none further)."""
    same, distinct = _links(db)
    found = {person_id}
    frontier = {person_id}
    while frontier:
        reached = _alike(db, frontier, distinct)
        for account in frontier:
            reached |= same.get(account, set())
        frontier = reached - found
        found |= frontier
    return tuple(sorted(found))


# -- what the custodian console shows ------------------------------------------------------

@dataclass(frozen=True)
class Account:
    id: str
    name: str
    email: str
    orcid: str | None
    institution_id: str
    status: str


@dataclass(frozen=True)
class Suspect:
    """Accounts that look like one human, and why. ``shared``: the rules or a custodian's
    link already make them one (they share one person allowance now); otherwise a weaker hint
    that joins nothing until a custodian links them (or marks them distinct)."""

    accounts: tuple[Account, ...]
    why: tuple[str, ...]
    shared: bool

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(a.id for a in self.accounts)


@dataclass(frozen=True)
class LinkView:
    id: int
    person_id: str
    same_as: str
    relation: str
    reason: str
    linked_by: str
    at: dt.datetime


class _Groups:
    """Union-find over account ids: the components the strong rules and links make."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, a: str) -> str:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def join(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def standing_links(db: Session) -> list[LinkView]:
    """The custodians' links in force, newest first."""
    return [LinkView(k.id, k.person_id, k.same_as, k.relation, k.reason, k.linked_by, k.at)
            for k in db.scalars(select(AccountLink).where(AccountLink.ended_at.is_(None))
                                .order_by(AccountLink.at.desc(), AccountLink.id.desc()))]


def suspected_duplicates(db: Session) -> list[Suspect]:
    """Groups of accounts that look like one human, each with why: first those that share an
    allowance now (same ORCID, same name and e-mail domain, a custodian's link), then weaker
    hints (the same name at other e-mail domains; the same e-mail name at other domains).
    Reads every account: for the console, not for a limit check."""
    rows = list(db.scalars(select(Person)))
    everyone = {p.id: Account(p.id, p.name, p.email, p.orcid, p.institution_id, p.status)
                for p in rows}
    keys = {p.id: p.name_key for p in rows}
    _, distinct = _links(db)
    groups = _Groups()
    why: dict[str, list[str]] = defaultdict(list)  # by the root of their component

    def by(value: Callable[[Account], str | None]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for account in everyone.values():
            found = value(account)
            if found:
                out[found].append(account.id)
        return {k: sorted(v) for k, v in out.items() if len(v) > 1}

    strong: list[tuple[list[str], str]] = []  # the accounts a reason joined, and the reason
    for orcid, ids in by(lambda a: a.orcid).items():
        for b in ids[1:]:
            groups.join(ids[0], b)
        strong.append((ids, f"same ORCID {orcid}"))
    for domain_key, ids in by(lambda a: f"{email_domain(a.email)}\n{keys[a.id]}"
                              if keys[a.id] else None).items():
        domain, key = domain_key.split("\n", 1)
        pairs = [(a, b) for a in ids for b in ids if a < b and frozenset((a, b)) not in distinct]
        for a, b in pairs:  # pairs a custodian marked distinct do not join
            groups.join(a, b)
        if pairs:
            joined = sorted({x for pair in pairs for x in pair})
            strong.append((joined, f"same name ({key}) and e-mail domain {domain}"))
    for link in standing_links(db):
        if link.relation == SAME:
            groups.join(link.person_id, link.same_as)
            strong.append(([link.person_id, link.same_as],
                           f"linked by {link.linked_by} on {link.at:%Y-%m-%d}: {link.reason}"))
    components: dict[str, set[str]] = defaultdict(set)
    for account in everyone:
        components[groups.find(account)].add(account)
    for ids, reason in strong:
        root = groups.find(ids[0])
        why[root].append(f"{reason}: {', '.join(ids)}")
    shared = [Suspect(tuple(everyone[i] for i in sorted(members)), tuple(why[root]), True)
              for root, members in components.items() if len(members) > 1]

    weaker: list[Suspect] = []
    hints = [(by(lambda a: keys[a.id]), "same name ({}) at different e-mail domains"),
             (by(lambda a: _local_hint(a.email)), "same e-mail name ({}) at different domains")]
    for found, text in hints:
        for value, ids in found.items():
            if len({groups.find(i) for i in ids}) < 2:
                continue  # already one human
            if all(frozenset((a, b)) in distinct for a in ids for b in ids if a < b):
                continue  # a custodian said they are different people
            domains = sorted({email_domain(everyone[i].email) for i in ids})
            weaker.append(Suspect(tuple(everyone[i] for i in ids),
                                  (f"{text.format(value)}: {', '.join(domains)}",), False))
    order = sorted(shared, key=lambda s: s.ids) + sorted(weaker, key=lambda s: s.ids)
    return order


def _local_hint(email: str) -> str | None:
    local = email_local(email)
    return local if len(local) >= 6 else None  # "info", "j.s": too common to hint at anyone


# -- a custodian's links -------------------------------------------------------------------

def _pair(person_id: str, same_as: str) -> tuple[str, str]:
    if person_id == same_as:
        raise Invalid(f"{person_id} is one account: give two different accounts to link")
    a, b = sorted((person_id, same_as))
    return a, b


def _standing(db: Session, a: str, b: str) -> AccountLink | None:
    return db.scalar(select(AccountLink).where(
        AccountLink.person_id == a, AccountLink.same_as == b, AccountLink.ended_at.is_(None)))


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not 3 <= len(reason) <= 500:
        raise Invalid("give a reason of 3 to 500 characters (what shows these accounts are "
                      "one human, or two): it is kept in the audit log")
    return reason


def duplicates(ctx: AccessContext, principal: Principal) -> list[Suspect]:
    """The suspected duplicate accounts, for people who may read people."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_READ)
        return suspected_duplicates(db)


def same_human(ctx: AccessContext, principal: Principal, person_id: str) -> tuple[str, ...]:
    """accounts_of for people who may read people (an unknown person is refused)."""
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_READ)
        if db.get(Person, person_id) is None:
            raise NotFound(f"there is no person {person_id}")
        return accounts_of(db, person_id)


def links(ctx: AccessContext, principal: Principal) -> list[LinkView]:
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_READ)
        return standing_links(db)


def link(ctx: AccessContext, principal: Principal, person_id: str, same_as: str, *,
         reason: str, relation: str = SAME) -> LinkView:
    """Say two accounts are one human (``same``: from now on they share one person
    allowance, with every account either is already one with) or two humans that only look
    alike (``distinct``: the name and domain rule stops joining this pair; an ORCID still
    does). Custodian admins only; audited with the reason."""
    if relation not in (SAME, DISTINCT):
        raise Invalid(f"a link says two accounts are {SAME!r} (one human) or {DISTINCT!r} "
                      f"(two humans), not {relation!r}")
    reason = _reason(reason)
    a, b = _pair(person_id, same_as)
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_WRITE)
        for account in (a, b):
            if db.get(Person, account) is None:
                raise NotFound(f"there is no person {account}")
        standing = _standing(db, a, b)
        if standing is not None:
            raise Conflict(f"{a} and {b} are already linked as {standing.relation} (link "
                           f"{standing.id}, by {standing.linked_by}); unlink them first to "
                           f"say otherwise")
        row = AccountLink(person_id=a, same_as=b, relation=relation, reason=reason,
                          linked_by=principal.person_id, at=ctx.clock())
        db.add(row)
        db.flush()
        ctx.record(EventType.PERSON_LINKED, principal, a,
                   {"same_as": b, "relation": relation, "reason": reason, "link": row.id,
                    "accounts": list(accounts_of(db, a))})
        return LinkView(row.id, a, b, relation, reason, row.linked_by, row.at)


def unlink(ctx: AccessContext, principal: Principal, person_id: str, same_as: str, *,
           reason: str) -> LinkView:
    """End a custodian's link between two accounts (kept, marked ended); audited."""
    reason = _reason(reason)
    a, b = _pair(person_id, same_as)
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_WRITE)
        row = _standing(db, a, b)
        if row is None:
            raise NotFound(f"no custodian's link joins {a} and {b}; accounts the rules join "
                           f"(same ORCID, or same name and e-mail domain) are told apart by "
                           f"linking them as {DISTINCT!r}")
        row.ended_by, row.ended_at, row.ended_reason = principal.person_id, ctx.clock(), reason
        ctx.record(EventType.PERSON_UNLINKED, principal, a,
                   {"same_as": b, "relation": row.relation, "reason": reason,
                    "link": row.id, "groups": sorted({accounts_of(db, a), accounts_of(db, b)})})
        return LinkView(row.id, a, b, row.relation, row.reason, row.linked_by, row.at)


def set_orcid(ctx: AccessContext, principal: Principal, person_id: str,
              orcid: str | None) -> Person:
    """Record (or clear, with None) a person's ORCID iD; audited. An ORCID another account
    has makes the two one human: the event names the accounts they now are."""
    parsed = optional_orcid(orcid)
    with ctx.transaction() as db:
        authorize(ctx, db, principal, Action.PERSON_WRITE)
        person = db.get(Person, person_id)
        if person is None:
            raise NotFound(f"there is no person {person_id}")
        if person.orcid == parsed:
            raise Conflict(f"{person_id}'s ORCID is already {parsed or 'unset'}")
        person.orcid = parsed
        db.flush()
        ctx.record(EventType.PERSON_UPDATED, principal, person_id,
                   {"orcid": "set" if parsed else "cleared",
                    "same_human_as": [x for x in accounts_of(db, person_id) if x != person_id]},
                   {"orcid": parsed} if parsed else None)
        return person
