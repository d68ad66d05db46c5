"""Fetch the web console's JavaScript and CSS from the npm registry and check them.

    python scripts/vendor_web.py           # re-fetch each file named in VENDOR.json, verify
    python scripts/vendor_web.py --update  # … and record the new digests (after a version bump)

Nothing is loaded from the internet at run time: the files are committed under
src/strongroom/server/web/static/vendor/, each with its package, version and SHA-256 in
VENDOR.json (a unit test re-checks the digests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[1] / "src/strongroom/server/web/static/vendor"


def fetch(package: str, version: str, inner: str, into: Path) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["npm", "pack", f"{package}@{version}", "--silent"], cwd=tmp,
                             check=True, capture_output=True, text=True).stdout.split()[-1]
        with tarfile.open(Path(tmp) / out) as tar:
            member = tar.extractfile(f"package/{inner}")
            if member is None:
                raise SystemExit(f"{package}@{version} has no {inner}")
            data = member.read()
    into.write_bytes(data)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true")
    args = parser.parse_args()
    if shutil.which("npm") is None:
        raise SystemExit("npm is needed to fetch from the npm registry")
    manifest = json.loads((VENDOR / "VENDOR.json").read_text())
    bad = []
    for name, entry in manifest.items():
        data = fetch(entry["package"], entry["version"], entry["path"], VENDOR / name)
        digest = hashlib.sha256(data).hexdigest()
        if args.update:
            entry["sha256"] = digest
        elif digest != entry["sha256"]:
            bad.append(f"{name}: {digest} is not the recorded {entry['sha256']}")
        print(f"{name}: {entry['package']}@{entry['version']} sha256 {digest}")
    if args.update:
        (VENDOR / "VENDOR.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if bad:
        print("\n".join(bad), file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
