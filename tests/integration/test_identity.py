"""Identity across accounts on SQLite and PostgreSQL: which accounts are one human (ORCID,
e-mail domain and name, a custodian's links), the suspected duplicates, linking, unlinking."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy import inspect, text

from strongroom import migrations
from strongroom.access import identity, people
from strongroom.access.roles import Role
from strongroom.access.states import Vetting
from strongroom.audit import EventType
from strongroom.db import Base
from strongroom.errors import Conflict, Invalid, NotFound, Refused
from strongroom.server.app import create_app
from strongroom.server.security import CSRF_HEADER
from strongroom.server.web.pages import PREFIX
from tests.access_world import INSIDE, PASSWORD, World, build_world

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


def events(world: World, kind: EventType) -> list[dict[str, object]]:
    return [e.details for e in world.platform.audit.entries() if e.type == kind.value]


def test_a_custodian_links_transitively_and_unlinks(world: World) -> None:
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    a = add(world, "ann@uni.test", "Ann Smith")
    b = add(world, "annie@gmail.test", "Annie Smith")
    c = add(world, "a.smith@hospital.test", "A. Smith")
    identity.link(world.ctx, admin, a, b, reason="same passport at vetting")
    identity.link(world.ctx, admin, c, b, reason="she told us (ticket 41)")
    assert accounts(world, c) == tuple(sorted((a, b, c)))
    with pytest.raises(Conflict, match="already linked as same"):
        identity.link(world.ctx, admin, b, a, reason="again")
    identity.unlink(world.ctx, admin, b, c, reason="ticket 41 was about someone else")
    assert accounts(world, c) == (c,) and accounts(world, a) == tuple(sorted((a, b)))
    with pytest.raises(NotFound, match="no custodian's link"):
        identity.unlink(world.ctx, admin, b, c, reason="twice")
    linked = events(world, EventType.PERSON_LINKED)
    assert [e["relation"] for e in linked] == ["same", "same"]
    assert linked[-1]["accounts"] == sorted((a, b, c))
    (unlinked,) = events(world, EventType.PERSON_UNLINKED)
    assert unlinked["reason"] == "ticket 41 was about someone else"
    assert sorted(map(tuple, unlinked["groups"])) == sorted([(c,), tuple(sorted((a, b)))])


def test_distinct_parts_namesakes_but_not_an_orcid(world: World) -> None:
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    one = add(world, "john.smith@nhs.test", "John Smith")
    two = add(world, "jsmith7@nhs.test", "Dr John SMITH")
    assert accounts(world, one) == tuple(sorted((one, two)))
    identity.link(world.ctx, admin, one, two, relation="distinct",
                  reason="two consultants, different GMC numbers")
    assert accounts(world, one) == (one,)
    identity.set_orcid(world.ctx, admin, one, ORCID)
    identity.set_orcid(world.ctx, admin, two, ORCID.replace("-", ""))
    assert accounts(world, one) == tuple(sorted((one, two)))  # one ORCID is one human
    assert events(world, EventType.PERSON_UPDATED)[-1]["same_human_as"] == [one]


def test_only_custodian_admins_link_and_the_refusal_is_audited(world: World) -> None:
    a = add(world, "ann@uni.test", "Ann Smith")
    b = add(world, "annie@gmail.test", "Annie Smith")
    analyst = world.sign_in(world.staff[Role.SECURITY_ANALYST])
    with pytest.raises(Refused, match="custodian admin"):
        identity.link(world.ctx, analyst, a, b, reason="looks like her")
    assert accounts(world, a) == (a,)
    assert any(e.type == EventType.ACCESS_REFUSED.value for e in world.platform.audit.entries())
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    with pytest.raises(Invalid, match="reason"):
        identity.link(world.ctx, admin, a, b, reason=" ")
    with pytest.raises(Invalid, match="two different accounts"):
        identity.link(world.ctx, admin, a, a, reason="myself")
    with pytest.raises(NotFound, match="per_gone"):
        identity.link(world.ctx, admin, a, "per_gone", reason="a ghost")
    with pytest.raises(Invalid, match=r"same.*distinct"):
        identity.link(world.ctx, admin, a, b, reason="maybe", relation="perhaps")


def test_an_orcid_is_checked_and_may_be_shared(world: World) -> None:
    with pytest.raises(Invalid, match="check digit"):
        add(world, "x@uni.test", "X Y", orcid="0000-0002-1825-0098")
    with pytest.raises(Invalid, match="not an ORCID"):
        add(world, "x@uni.test", "X Y", orcid="orcid:12")
    first = add(world, "x@uni.test", "X Y", orcid=ORCID)
    second = add(world, "xy@elsewhere.test", "Xavier Yu", orcid=ORCID)
    created = events(world, EventType.PERSON_CREATED)
    assert created[-1]["same_human_as"] == [first]
    assert accounts(world, second) == tuple(sorted((first, second)))


def test_suspected_duplicates_say_why_and_agree_with_accounts_of(world: World) -> None:
    admin = world.sign_in(world.staff[Role.CUSTODIAN_ADMIN])
    a1 = add(world, "ann.oneil@uni.test", "Ann O'Neil")
    a2 = add(world, "aoneil@uni.test", "Dr Ann O’Neil")
    b1 = add(world, "bob.jones@uni.test", "Bob Jones")
    b2 = add(world, "bob.jones@gmail.test", "Robert Jones")  # e-mail name only: weaker
    c1 = add(world, "carol@uni.test", "Carol King")
    c2 = add(world, "ck@other.test", "Carol King")  # name only, elsewhere: weaker
    d1 = add(world, "dee@uni.test", "Dee Lee")
    d2 = add(world, "dl@other.test", "Dee Lee")
    identity.link(world.ctx, admin, d1, d2, reason="one passport")
    e1 = add(world, "eve@uni.test", "Eve Ho")
    e2 = add(world, "eve.ho@other.test", "Eve Ho")
    identity.link(world.ctx, admin, e1, e2, relation="distinct", reason="two people")
    found = identity.duplicates(world.ctx, admin)
    shared = {s.ids: s.why for s in found if s.shared}
    weaker = {s.ids: s.why for s in found if not s.shared}
    assert set(shared) == {tuple(sorted((a1, a2))), tuple(sorted((d1, d2)))}
    assert "same name (ann oneil) and e-mail domain uni.test" in shared[tuple(sorted((a1, a2)))][0]
    assert "linked by" in shared[tuple(sorted((d1, d2)))][0]
    assert set(weaker) == {tuple(sorted((b1, b2))), tuple(sorted((c1, c2)))}
    assert "same e-mail name (bobjones)" in weaker[tuple(sorted((b1, b2)))][0]
    assert "different e-mail domains: other.test, uni.test" in weaker[tuple(sorted((c1, c2)))][0]
    for suspect in found:  # the console's groups are the limits' groups
        for account in suspect.ids:
            assert (accounts(world, account) == suspect.ids) is suspect.shared


def test_the_api_registers_an_orcid_links_and_lists_duplicates(world: World) -> None:
    admin = world.staff[Role.CUSTODIAN_ADMIN]
    client = TestClient(create_app(world.platform), client=(INSIDE, 50000))
    answer = client.post("/auth/login", json={"email": admin.email, "password": PASSWORD,
                                              "code": world.code(admin)})
    assert answer.status_code == 200, answer.text
    client.headers[CSRF_HEADER] = answer.json()["csrf_token"]

    def person(email: str, name: str, orcid: str | None = None) -> Any:
        return client.post("/people", json={
            "institution_id": world.partner_id, "email": email, "name": name,
            "roles": ["researcher"], "password": PASSWORD, "orcid": orcid})

    made = person("ann@uni.test", "Ann Lee", f"https://orcid.org/{ORCID}")
    assert made.status_code == 201, made.text
    first = made.json()["person"]
    assert first["orcid"] == ORCID
    bad = person("bob@uni.test", "Bob", "0000-0002-1825-0098")
    assert bad.status_code == 400 and "check digit" in bad.text
    second = person("a.lee@gmail.test", "Annie Lee").json()["person"]
    weak = client.get("/identity/duplicates").json()
    assert weak == []  # different names, different domains: nothing to suspect yet
    answer = client.post("/identity/links", json={"person_id": first["id"],
                                                  "same_as": second["id"],
                                                  "reason": "one passport at vetting"})
    assert answer.status_code == 201, answer.text
    pair = sorted((first["id"], second["id"]))
    assert client.get(f"/people/{second['id']}/accounts").json()["accounts"] == pair
    (suspect,) = client.get("/identity/duplicates").json()
    assert suspect["shared"] and [a["id"] for a in suspect["accounts"]] == pair
    assert "linked by" in suspect["why"][0]
    assert client.post("/identity/links", json={"person_id": first["id"],
                                                "same_as": second["id"],
                                                "reason": "again"}).status_code == 409
    answer = client.post("/identity/unlink", json={"person_id": second["id"],
                                                   "same_as": first["id"],
                                                   "reason": "a mistake"})
    assert answer.status_code == 200, answer.text
    assert client.get("/identity/links").json() == []
    answer = client.post(f"/people/{second['id']}/orcid", json={"orcid": ORCID})
    assert answer.status_code == 200 and answer.json()["orcid"] == ORCID
    assert client.get(f"/people/{first['id']}/accounts").json()["accounts"] == pair


def test_the_console_shows_suspects_and_links_them(world: World) -> None:
    client = TestClient(create_app(world.platform), client=(INSIDE, 50000),
                        follow_redirects=False)
    admin = world.staff[Role.CUSTODIAN_ADMIN]
    answer = client.post(f"{PREFIX}/login", data={"email": admin.email, "password": PASSWORD,
                                                  "code": world.code(admin)})
    assert answer.status_code == 303, answer.text
    a = add(world, "carol@uni.test", "Carol King")
    b = add(world, "ck@other.test", "Prof. Carol KING")
    page = client.get(f"{PREFIX}/custodian/people")
    assert page.status_code == 200
    assert "Suspected duplicate accounts" in page.text
    assert "same name (carol king) at different e-mail domains: other.test, uni.test" \
        in html.unescape(page.text)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"csrf_token": csrf[1], "person_id": a, "same_as": b, "relation": "same"}
    refused = client.post(f"{PREFIX}/custodian/people/links", data=form | {"reason": ""})
    assert refused.status_code == 400 and "give a reason" in refused.text
    done = client.post(f"{PREFIX}/custodian/people/links", data=form | {"reason": "one human"})
    assert done.status_code == 303, done.text
    assert accounts(world, a) == tuple(sorted((a, b)))
    page = client.get(f"{PREFIX}/custodian/people")
    assert "one allowance" in page.text and "linked by" in page.text
    person = client.get(f"{PREFIX}/custodian/people/{a}")
    assert b in person.text and "one person allowance" in person.text
    done = client.post(f"{PREFIX}/custodian/people/{a}/orcid",
                       data={"csrf_token": csrf[1], "orcid": "0000-0002-1825-0098"})
    assert done.status_code == 400 and "check digit" in done.text
    done = client.post(f"{PREFIX}/custodian/people/unlink",
                       data={"csrf_token": csrf[1], "person_id": b, "same_as": a,
                             "reason": "a mistake"})
    assert done.status_code == 303, done.text
    assert accounts(world, a) == (a,)
    committee = world.staff[Role.ACCESS_COMMITTEE]  # reads people, may not link them
    other = TestClient(create_app(world.platform), client=(INSIDE, 50000),
                       follow_redirects=False)
    other.post(f"{PREFIX}/login", data={"email": committee.email, "password": PASSWORD,
                                        "code": world.code(committee)})
    page = other.get(f"{PREFIX}/custodian/people")
    assert page.status_code == 200 and "Suspected duplicate accounts" in page.text
    assert "/custodian/people/links" not in page.text  # no forms for those who may not link


def test_migration_0015_keys_the_people_registered_before_it(world: World) -> None:
    """Upgraded from 0014 (people, no keys), each person's name key is computed as a new
    person's is, so the rules hold from the first limit check after the upgrade."""
    first = add(world, "ann.oneil@uni.test", "Dr Ann O'Neil")
    second = add(world, "aoneil@uni.test", "O’Neil, Ann")
    engine = world.platform.store.engine
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    with engine.begin() as con:
        config.attributes["connection"] = con
        command.downgrade(config, "0014")
    assert "orcid" not in {c["name"] for c in inspect(engine).get_columns("access_people")}
    assert migrations.upgrade(engine)[:1] == ["0015"]
    assert migrations.differences(engine, Base.metadata) == []
    with engine.connect() as con:
        keys = dict(con.execute(text("SELECT id, name_key FROM access_people")).all())
    assert keys[first] == keys[second] == "ann oneil"
    assert accounts(world, first) == tuple(sorted((first, second)))
