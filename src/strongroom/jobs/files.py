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

import datetime as dt
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np

from strongroom.access.context import AccessContext, Principal
from strongroom.enclave.results import AnalysisKind
from strongroom.errors import Invalid, is_failure
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
MAX_COLUMNS = 10_000  # in a job's own CSV: wider is no table a person reads
LEVELS = 16  # per colour channel, after re-encoding a PNG
_SVG_REFUSED = re.compile(
    rb"<script|<!doctype|<!entity|<foreignobject|<iframe|<embed|<object|javascript:|"
    rb"\son[a-z]+\s*=|(?:xlink:)?href\s*=\s*[\"'](?!#)|@import|url\(\s*[\"']?(?!#)",
    re.IGNORECASE)
_DIGITS = re.compile(rb"(?<![0-9])[0-9]{7}(?![0-9])")


@dataclass(frozen=True)
class Kept:
    """A job's own file made ready to keep: everything read from its bytes is done."""

    payload: bytes
    media_type: str
    filename: str
    report: CheckReport
    job: dict[str, Any]


def prepare(outputs: Outputs, project_id: str, *, data: bytes, path: str, kind: OutputKind,
            job: dict[str, Any]) -> Kept:
    """Read the file for the output checkers (:func:`keep` records it).

    What the researcher sees of it is the same whatever the file holds: one constant finding,
    under review. Everything read from the bytes (the scanner's findings, a figure's size, why
    it could not be kept) is for the checkers alone: the file was written on the real data,
    and a refusal's words, a count of IDs found or a verdict that changed with it would carry
    what the job read. A file that cannot be kept as it is (too large, not what its name
    says, an SVG with active content) is kept as a placeholder of the same name and type,
    with the reason for the checkers to reject it. How long the reading takes depends on the
    bytes too, so it is done before the job's end is due, and only :func:`keep` after."""
    name = PurePosixPath(path).name
    suffix = PurePosixPath(path).suffix.lower()
    findings = [Finding(RULE, Verdict.REVIEW, (
        f"written by the job's own code ({job['script']}, code SHA-256 "
        f"{job['code_sha256'][:12]}…), not through strongroom.sdc: the check cannot tell what "
        "it holds, so two output checkers decide, with the code beside it"))]
    try:
        payload, found = _read(outputs, data, name, suffix, kind)
    except BaseException as problem:  # fail closed: whatever the bytes did, a placeholder
        if not is_failure(problem):
            raise
        why = "; ".join(getattr(problem, "reasons", None) or [f"{type(problem).__name__}"])
        payload, found = PLACEHOLDER[suffix], [Finding(SCAN_RULE, Verdict.REVIEW, (
            f"the file could not be kept as the job wrote it ({why}): this is a placeholder; "
            "reject it"))]
    # the scanner's blocks become the checkers' to act on: a verdict that changed with the
    # bytes would answer what they hold
    findings += [Finding(f.rule, Verdict.REVIEW, f"the scanner: {f.reason}; reject it")
                 if f.verdict is Verdict.BLOCK else f for f in found]
    report = CheckReport(Verdict.REVIEW, findings, withheld=True,
                         rules_version=outputs.rules_for(project_id).version_id)
    return Kept(payload, MEDIA[suffix], name, report, job)


def keep(ctx: AccessContext, principal: Principal, project_id: str, kept: Kept, *,
         shown_at: Callable[[], dt.datetime] | None = None) -> requests.OutputView:
    """Keep a prepared file as an output waiting for the output checkers, shown from
    ``shown_at()`` (record_output's)."""
    return requests.record_output(
        ctx, principal, project_id, payload=kept.payload, media_type=kept.media_type,
        filename=kept.filename, report=kept.report, kind=AnalysisKind.JOB_FILE, spec=kept.job,
        shown_at=shown_at)


def _read(outputs: Outputs, data: bytes, name: str, suffix: str, kind: OutputKind
          ) -> tuple[bytes, list[Finding]]:
    """The bytes to keep and what reading them found (Invalid, or any other exception: they
    cannot be kept). Every test an output's bytes must pass is made here, so that none is
    left to fail later where its words would reach the researcher."""
    if len(data) > MAX_BYTES[kind]:
        raise Invalid(f"{name} is larger than {MAX_BYTES[kind] >> 20} MiB, the most a "
                      f"{kind.value} output may be")
    if suffix == ".csv" and data.split(b"\n", 1)[0].count(b",") >= MAX_COLUMNS:
        raise Invalid(f"{name} has {MAX_COLUMNS:,} columns or more")
    if suffix != ".png":  # a PNG is tested once encoded again (below)
        problems = requests.payload_problems(data, MEDIA[suffix], name)
        if problems:
            raise Invalid(problems)
    if suffix == ".png":
        png = plain_png(data)
        problems = requests.payload_problems(png, MEDIA[suffix], name)
        if problems:
            raise Invalid(problems)
        return png, [Finding(SCAN_RULE, Verdict.REVIEW, (
            "a figure's pixels cannot be scanned: it was encoded again from its pixels alone "
            f"(metadata dropped, {LEVELS} levels per colour); check that it shows only what "
            "checked tables would"))]
    if suffix == ".svg":
        _svg(data, name)
        return data, [Finding(SCAN_RULE, Verdict.REVIEW, (
            "an SVG's shapes cannot be scanned: check that it shows only what checked tables "
            "would (each point of a scatter plot is a participant)"))]
    if suffix in (".csv", ".json"):
        return data, outputs.scan_file(data, name)
    return data, _text(outputs, data)


# what is kept of a file that could not be (same name, same type: nothing to tell apart)
PLACEHOLDER: dict[str, bytes] = {
    ".csv": b"note\nthe job's file could not be kept; the output checkers have the reason\n",
    ".json": b'{"note": "the job\'s file could not be kept; the output checkers have the '
             b'reason"}',
    ".txt": b"the job's file could not be kept; the output checkers have the reason\n",
    ".md": b"the job's file could not be kept; the output checkers have the reason\n",
    ".svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"></svg>',
    ".png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08"
             b"\x02\x00\x00\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xff\xff?\x00"
             b"\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82"),
}


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
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError,
            Image.DecompressionBombError):
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
