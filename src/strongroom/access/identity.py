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

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, aliased

from strongroom.access.models import AccountLink, Person
from strongroom.access.names import email_domain

SAME = "same"
DISTINCT = "distinct"


def _links(db: Session) -> tuple[dict[str, set[str]], set[frozenset[str]]]:
    """The custodians' standing links: who is linked to whom (same), and the pairs said to be
    different people (distinct). Few rows (a custodian writes each), read in one query."""
    same: dict[str, set[str]] = defaultdict(set)
    distinct: set[frozenset[str]] = set()
    for a, b, relation in db.execute(
            select(AccountLink.person_id, AccountLink.same_as, AccountLink.relation)
            .where(AccountLink.ended_at.is_(None))):
        if relation == SAME:
            same[a].add(b)
            same[b].add(a)
        else:
            distinct.add(frozenset((a, b)))
    return same, distinct


def _alike(db: Session, frontier: Iterable[str],
           distinct: set[frozenset[str]]) -> set[str]:
    """Accounts the rules join to any of ``frontier``: one indexed self-join (ORCID, name
    key), the domain compared here (it is part of the e-mail, which is indexed whole)."""
    mine, other = aliased(Person), aliased(Person)
    rows = db.execute(
        select(mine.id, mine.email, mine.orcid, other.id, other.email, other.orcid)
        .join(other, or_(other.name_key == mine.name_key, other.orcid == mine.orcid))
        .where(mine.id.in_(list(frontier)), other.id != mine.id))
    found = set()
    for a, a_email, a_orcid, b, b_email, b_orcid in rows:
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
