"""Names beside IDs: what a person reads on a page is who and what, not ``per_…``.

Only what the person may read is named, each kind through its own service and permission:

- institutions with ``institution.read`` (``institutions.list_all``);
- projects they may read (``projects.titles``, ``list_visible``'s projects: a researcher's
  own, every project for the overseeing roles and output checkers);
- people with ``person.read`` (``people.names``); without it, themselves and the people on
  the projects they may read (``projects.people_on``: a researcher's colleagues, the asker
  of an output a checker reviews).

An ID the reader may not read stays an ID: a researcher never reads the name of another
project or of anyone outside their own projects, whatever the page. Each kind is read once
per page, when the page first names one of its kind (and not at all by a page that names
none), and a kind the reader's roles may not read is not asked for (no refusal recorded).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from strongroom.access import institutions, people, projects
from strongroom.access.context import AccessContext, Principal
from strongroom.access.permissions import Action, who_may
from strongroom.errors import ServiceError

ID = re.compile(r"\b(?:ins|prj|per)_[0-9a-f]+\b")
KINDS = {"ins": "institution", "prj": "project", "per": "person"}


def _institutions(ctx: AccessContext, who: Principal) -> dict[str, str]:
    if who_may(Action.INSTITUTION_READ, who.roles):
        return {}
    return {i.id: i.name for i in institutions.list_all(ctx, who)}


def _projects(ctx: AccessContext, who: Principal) -> dict[str, str]:
    if who_may(Action.PROJECT_READ, who.roles):
        return {}
    return projects.titles(ctx, who)


def _people(ctx: AccessContext, who: Principal) -> dict[str, str]:
    if not who_may(Action.PERSON_READ, who.roles):
        return people.names(ctx, who)
    found = {}
    if not who_may(Action.PROJECT_READ, who.roles):
        found = projects.people_on(ctx, who)
    return found | _me(ctx, who)


def _me(ctx: AccessContext, who: Principal) -> dict[str, str]:
    me, _, _ = people.read(ctx, who, who.person_id)
    return {me.id: me.name}


READERS: dict[str, Callable[[AccessContext, Principal], dict[str, str]]] = {
    "ins": _institutions, "prj": _projects, "per": _people}


class Names:
    """The names one reader may read, by ID, read lazily: ``names(some_id)`` is the name, or
    the ID itself when there is none the reader may read (None: "—")."""

    def __init__(self, ctx: AccessContext, who: Principal | None):
        self.ctx, self.who = ctx, who
        self._read: dict[str, dict[str, str]] = {}

    def _kind(self, prefix: str) -> dict[str, str]:
        if prefix not in self._read:
            found: dict[str, str] = {}
            read = _me if prefix == "me" else READERS.get(prefix)
            if self.who is not None and read is not None:
                try:
                    found = read(self.ctx, self.who)
                except ServiceError:  # refused now (a paused account): IDs stay IDs
                    found = {}
            self._read[prefix] = found
        return self._read[prefix]

    def get(self, some_id: str | None) -> str | None:
        """The name of ``some_id`` if the reader may read it, else None."""
        if not some_id:
            return None
        if self.who is not None and some_id == self.who.person_id \
                and "per" not in self._read:  # every page names its reader: one row
            return self._kind("me").get(some_id)
        return self._kind(some_id.split("_", 1)[0]).get(some_id)

    def __call__(self, some_id: str | None) -> str:
        if not some_id:
            return "—"
        return self.get(some_id) or some_id

    def or_(self, some_id: str | None, words: str) -> str:
        """The name of ``some_id``, or ``words`` saying who it is without naming them (the
        output checker who reviewed a researcher's output), never the bare ID."""
        return self.get(some_id) or words

    def beside(self, text: Any) -> str:
        """``text`` with each ID it holds that the reader may name written as "name (ID)"."""
        def one(found: re.Match[str]) -> str:
            name = self.get(found.group(0))
            return found.group(0) if name is None else f"{name} ({found.group(0)})"
        return ID.sub(one, str(text))

    def all(self) -> dict[str, str]:
        """Every name the reader may read, by ID."""
        return {k: v for prefix in READERS for k, v in self._kind(prefix).items()}

    def labelled(self) -> dict[str, str]:
        """Every name the reader may read with its kind before it ("project Heart study"),
        by ID: what a form offering any of them (a pause's target) lists."""
        return {k: f"{KINDS[prefix]} {v}" for prefix in READERS
                for k, v in self._kind(prefix).items()}


def readable(ctx: AccessContext, who: Principal) -> dict[str, str]:
    """Each institution's, project's and person's name, by ID, that ``who`` may read."""
    return Names(ctx, who).all()


def beside(text: str, names: dict[str, str]) -> str:
    """``text`` with each ID it holds that has a name written as “name (ID)”."""
    return ID.sub(lambda m: f"{names[m.group(0)]} ({m.group(0)})" if m.group(0) in names
                  else m.group(0), text)
