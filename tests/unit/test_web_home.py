"""The home page's cards: every console section has its purpose and its waiting counts."""

from __future__ import annotations

from strongroom.server.web.pages import SECTIONS
from strongroom.server.web.signin import PURPOSES, WAITING


def test_every_section_has_a_card() -> None:
    titles = {title for title, _, _ in SECTIONS}
    assert set(PURPOSES) == titles
    assert set(WAITING) == titles
    assert all(PURPOSES[t].endswith(".") for t in titles)
