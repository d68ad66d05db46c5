"""The request key of the keyed margins (enclave.service.decision_key): the same request over
the same definitions draws the same; a calibrating request, or the same request over a
definition made again with other text, draws its own."""

from __future__ import annotations

from pathlib import Path

from strongroom.attacks.catalogue import BASE
from strongroom.attacks.world import AttackWorld
from strongroom.enclave import service


def test_the_decision_key_follows_the_request_and_every_definition_it_reads(
        tmp_path: Path) -> None:
    world = AttackWorld.build(tmp_path)
    try:
        who, project_id = world.researcher()
        enclave = world.platform.enclave
        service.define(enclave, who, project_id, "base", BASE)
        service.define(enclave, who, project_id, "f", "SELECT pid, sex FROM base WHERE sex = 1")
        project = service.scope(enclave, who, project_id).project

        def key(request: dict[str, str]) -> bytes:
            return service.decision_key(enclave, project, request)

        frequency = {"kind": "frequency", "definition": "f", "variable": "sex"}
        sql = {"kind": "aggregate_sql", "sql": "SELECT count(*) AS n FROM f"}
        before = key(frequency), key(sql)
        assert before == (key(dict(frequency)), key(dict(sql)))  # reproducible
        # a calibrating request is other text
        assert key({**sql, "sql": "SELECT count(*) AS n FROM f WHERE 1 = 1"}) != before[1]
        # the same request over a definition made again with other text draws afresh
        service.define(enclave, who, project_id, "f", "SELECT pid, sex FROM base WHERE sex = 0")
        assert key(frequency) != before[0] and key(sql) != before[1]
    finally:
        world.close()
