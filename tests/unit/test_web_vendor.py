"""The console's vendored JavaScript and CSS are exactly the npm packages' files on record."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import strongroom.server.web as web

VENDOR = Path(web.__file__).parent / "static" / "vendor"


def test_every_vendored_file_matches_its_recorded_digest() -> None:
    manifest = json.loads((VENDOR / "VENDOR.json").read_text())
    assert set(manifest) == {p.name for p in VENDOR.glob("*.min.*")}, "each file is recorded"
    for name, entry in manifest.items():
        digest = hashlib.sha256((VENDOR / name).read_bytes()).hexdigest()
        assert digest == entry["sha256"], f"{name} differs from {entry['package']}@" \
                                          f"{entry['version']}; run scripts/vendor_web.py"


def test_pages_load_nothing_from_elsewhere() -> None:
    templates = Path(web.__file__).parent / "templates"
    for page in templates.rglob("*.html"):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page.name
        assert "<script>" not in text and " style=" not in text, page.name  # CSP: no inline
