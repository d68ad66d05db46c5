"""Identity across accounts on SQLite and PostgreSQL: which accounts are one human (ORCID,
e-mail domain and name, a custodian's links), the suspected duplicates, linking, unlinking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from strongroom.access import identity, people
from strongroom.access.roles import Role
from strongroom.access.states import Vetting
from tests.access_world import PASSWORD, World, build_world

ORCID = "0000-0002-1825-0097"


@pytest.fixture
def world(tmp_path: Path, database_url: str | None,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.delenv("STRONGROOM_MASTER_KEY", raising=False)
    built = build_world(tmp_path, database_url, project=False)
    yield built
    built.platform.close()


def add(world: World, email: str, name: str, orcid: str | None = None,
        institution: str | None = None) -> str:
    return people.create(world.ctx, None, institution_id=institution or world.partner_id,
                         email=email, name=name, roles=[Role.RESEARCHER.value],
                         password=PASSWORD, vetting=Vetting.APPROVED, orcid=orcid).person.id


def accounts(world: World, person_id: str) -> tuple[str, ...]:
    with world.ctx.transaction() as db:
        return identity.accounts_of(db, person_id)


def test_same_name_and_domain_are_one_human(world: World) -> None:
    first = add(world, "ann.oneil@uni.test", "Dr. Ann  O'Neil")
    second = add(world, "a.oneil2@UNI.test", "o’neil, ANN")
    elsewhere = add(world, "ann@other.test", "Ann O'Neil")  # same name, another domain
    namesake = add(world, "bob@uni.test", "Bob O'Neil")
    assert accounts(world, first) == accounts(world, second) == tuple(sorted((first, second)))
    assert accounts(world, elsewhere) == (elsewhere,)
    assert accounts(world, namesake) == (namesake,)
    assert accounts(world, "per_nobody") == ("per_nobody",)


def test_same_orcid_is_one_human_across_domains(world: World) -> None:
    first = add(world, "ann@uni.test", "Ann Smith", orcid=ORCID)
    second = add(world, "asmith@elsewhere.test", "Annie Smith-Jones",
                 orcid=f"https://orcid.org/{ORCID}")
    third = add(world, "as@elsewhere.test", "Annie Jones Smith")  # joined through second
    assert accounts(world, first) == tuple(sorted((first, second, third)))
