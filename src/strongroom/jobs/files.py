"""A job's own files: kept with the check's best reading, for two output checkers.

A file a script wrote by itself carries no contributor sets, so nothing about it can be
checked automatically; whatever it holds, it waits for two different output checkers, who see
the code that made it beside it. Before that it is made as plain as it can be:

- a table or model (CSV, JSON) and a text file are scanned for participant IDs and raw rows;
  a match blocks it outright;
- a PNG is decoded and encoded again from its pixels alone, each channel cut to 16 levels:
  text chunks, EXIF, colour profiles and trailing bytes are gone, and so are the low bits of
  every pixel, where data could hide unseen; what is left is what the checkers see;
- an SVG with active or hidden content (scripts, event handlers, links out, embedded
  documents or entities) is refused, as is one too large to read.
"""

from __future__ import annotations

import io
import re
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from strongroom.access.context import AccessContext, Principal
from strongroom.enclave.results import AnalysisKind
from strongroom.errors import Invalid
from strongroom.jobs.pipeline import OutputKind
from strongroom.outputs import requests
from strongroom.outputs.service import Outputs
from strongroom.outputs.verdicts import CheckReport, Finding, Verdict

RULE = "job_file"
SCAN_RULE = "job_file_scan"
MEDIA: dict[str, str] = {".csv": "text/csv", ".json": "application/json", ".png": "image/png",
                         ".svg": "image/svg+xml", ".txt": "text/plain", ".md": "text/markdown"}
MAX_BYTES: dict[OutputKind, int] = {OutputKind.TABLE: 4 << 20, OutputKind.MODEL: 4 << 20,
                                    OutputKind.FIGURE: 8 << 20, OutputKind.TEXT: 1 << 20}
MAX_PIXELS = 4000 * 4000
LEVELS = 16  # per colour channel, after re-encoding a PNG
_SVG_REFUSED = re.compile(
    rb"<script|<!doctype|<!entity|<foreignobject|<iframe|<embed|<object|javascript:|"
    rb"\son[a-z]+\s*=|(?:xlink:)?href\s*=\s*[\"'](?!#)|@import|url\(\s*[\"']?(?!#)",
    re.IGNORECASE)
_DIGITS = re.compile(rb"(?<![0-9])[0-9]{7}(?![0-9])")


def record(ctx: AccessContext, outputs: Outputs, principal: Principal, project_id: str, *,
           data: bytes, path: str, kind: OutputKind, job: dict[str, Any]
           ) -> requests.OutputView:
    """Keep the file as an output waiting for the output checkers (Invalid if it cannot be:
    too large, not what its name says, or an SVG with active content)."""
    name = PurePosixPath(path).name
    suffix = PurePosixPath(path).suffix.lower()
    media = MEDIA[suffix]
    if len(data) > MAX_BYTES[kind]:
        raise Invalid(f"{name} is larger than {MAX_BYTES[kind] >> 20} MiB, the most a "
                      f"{kind.value} output may be")
    findings = [Finding(RULE, Verdict.REVIEW, (
        f"written by the job's own code ({job['script']}, code SHA-256 "
        f"{job['code_sha256'][:12]}…), not through strongroom.sdc: the check cannot tell what "
        "it holds, so two output checkers decide, with the code beside it"))]
    if suffix == ".png":
        data = plain_png(data)
        findings.append(Finding(SCAN_RULE, Verdict.REVIEW, (
            "a figure's pixels cannot be scanned: it was encoded again from its pixels alone "
            f"(metadata dropped, {LEVELS} levels per colour); check that it shows only what "
            "checked tables would")))
    elif suffix == ".svg":
        _svg(data, name)
        findings.append(Finding(SCAN_RULE, Verdict.REVIEW, (
            "an SVG's shapes cannot be scanned: check that it shows only what checked tables "
            "would (each point of a scatter plot is a participant)")))
    elif suffix in (".csv", ".json"):
        findings += outputs.scan_file(data, name)
    else:
        findings += _text(outputs, data)
    report = CheckReport(CheckReport.worst(findings), findings,
                         rules_version=outputs.rules_for(project_id).version_id)
    return requests.record_output(
        ctx, principal, project_id, payload=data, media_type=media, filename=name,
        report=report, kind=AnalysisKind.JOB_FILE, spec=job,
        acted=report.verdict is Verdict.BLOCK)


def plain_png(data: bytes) -> bytes:
    """The image's pixels alone, each channel cut to ``LEVELS`` levels, as a new PNG."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise Invalid(f"the figure is {image.width}×{image.height} pixels; at most "
                              f"{MAX_PIXELS:,} in all")
            if getattr(image, "n_frames", 1) != 1:
                raise Invalid("the figure is an animation; a figure is one image")
            pixels = np.asarray(image.convert("RGB"), dtype=np.uint16)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise Invalid("the figure is not a PNG image that can be read") from None
    step = 256 // LEVELS
    cut = (pixels // step * step + step // 2).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(cut, "RGB").save(out, format="PNG", optimize=True)
    return out.getvalue()


def _svg(data: bytes, name: str) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"{name} is not UTF-8 SVG") from None
    found = _SVG_REFUSED.search(data)
    if found is not None or "<svg" not in text[:4096].lower():
        raise Invalid(f"{name} is refused: an SVG output may hold shapes and text only, not "
                      "scripts, event handlers, links out, entities or embedded documents "
                      "(save the figure as PNG instead)")


def _text(outputs: Outputs, data: bytes) -> list[Finding]:
    """Participant IDs in a text file (its raw rows, if any, are for the checkers)."""
    numbers = np.array([int(m) for m in _DIGITS.findall(data)], dtype=np.int64)
    if numbers.size and bool(outputs.index().is_id(numbers).any()):
        return [Finding(SCAN_RULE, Verdict.BLOCK, (
            "the text holds participant IDs; a log or note may say what the code did, never "
            "which participants it read"))]
    return []
