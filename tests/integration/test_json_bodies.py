"""A JSON body sent without a JSON content type (``curl -d`` sends a form's) is refused with
what to do, not only with what the validator saw (issue 55: hold-transfer-limits.md's curl
commands lacked the header, and a newcomer read "Input should be a valid dictionary")."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from strongroom.server.app import create_app
from tests.access_world import INSIDE, build_world


def test_a_json_body_sent_as_a_form_says_to_send_it_as_json(tmp_path: Path) -> None:
    world = build_world(tmp_path, project=False)
    try:
        client = TestClient(create_app(world.platform), client=(INSIDE, 50000))
        body = json.dumps({"email": "a@b.example", "password": "x", "code": "123456"})
        as_form = client.post("/auth/login", content=body, headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        assert as_form.status_code == 422
        reasons = as_form.json()["reasons"]
        assert any("Content-Type: application/json" in r and
                   "application/x-www-form-urlencoded" in r for r in reasons), reasons
        # sent as JSON, the same body reaches sign-in (and is refused there, not here)
        as_json = client.post("/auth/login", content=body,
                              headers={"Content-Type": "application/json"})
        assert as_json.status_code != 422, as_json.text
        # a JSON body that is wrong in itself gets no such advice
        wrong = client.post("/auth/login", json={"email": "a@b.example"})
        assert wrong.status_code == 422
        assert not any("Content-Type" in r for r in wrong.json()["reasons"])
    finally:
        world.platform.close()
