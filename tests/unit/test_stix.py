"""Decoy indicators as STIX 2.1: the bundle's shape, the pattern grammar, and matching."""

from __future__ import annotations

import datetime as dt
import json
import re

import polars as pl
import pytest

from strongroom.cohort.dictionary import shipped_dictionary
from strongroom.cohort.synth.generator import synthesise
from strongroom.errors import Invalid
from strongroom.extracts.decoys import DecoyRegistry, make_decoys
from strongroom.extracts.stix import (
    TLP_RED_ID,
    decoy_indicators,
    indicator_id,
    match_indicators,
    parse_pattern,
)
from strongroom.extracts.tables import read_suspect
from tests.unit.test_linkage import COLUMNS, MEASURES, TRUTH, disguise, released, units

KEY = bytes(range(32))
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
CUSTOM = re.compile(r"x_[a-z0-9_]{1,248}")


@pytest.fixture(scope="module")
def master() -> pl.DataFrame:
    return synthesise(3000, 31).participants.select(["eid", *COLUMNS])


@pytest.fixture(scope="module")
def registry(master) -> DecoyRegistry:
    made = DecoyRegistry()
    for i in range(2):
        made.add(f"ext-{i}", make_decoys(master, shipped_dictionary(), seed=200 + i))
    return made


@pytest.fixture(scope="module")
def bundle(registry) -> dict:
    when = dt.datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)
    return decoy_indicators(registry, registry.extract_ids, KEY, key_id="partner-7",
                            created=when)


def indicators(bundle: dict) -> list[dict]:
    return [o for o in bundle["objects"] if o["type"] == "indicator"]


# -- shape -------------------------------------------------------------------------------------


def test_bundle_and_objects_carry_the_required_properties(bundle, registry):
    assert bundle["type"] == "bundle" and re.fullmatch(f"bundle--{UUID}", bundle["id"])
    assert "spec_version" not in bundle  # STIX 2.1 bundles have none
    ids = [o["id"] for o in bundle["objects"]]
    assert len(ids) == len(set(ids))
    marking = next(o for o in bundle["objects"] if o["type"] == "marking-definition")
    assert marking == {
        "type": "marking-definition", "spec_version": "2.1", "id": TLP_RED_ID,
        "created": "2022-10-01T00:00:00.000Z", "name": "TLP:RED",
        "extensions": {"extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d": {
            "extension_type": "property-extension", "tlp_2_0": "red"}}}
    identity = next(o for o in bundle["objects"] if o["type"] == "identity")
    assert re.fullmatch(f"identity--{UUID}", identity["id"])
    assert identity["identity_class"] == "organization"
    found = indicators(bundle)
    assert len(found) == 2 * 44  # every decoy of both extracts
    for ind in found:
        for name in ("type", "spec_version", "id", "created", "modified", "pattern",
                     "pattern_type", "valid_from"):
            assert name in ind, name
        assert ind["spec_version"] == "2.1" and re.fullmatch(f"indicator--{UUID}", ind["id"])
        assert ind["pattern_type"] == "stix" and ind["pattern_version"] == "2.1"
        assert ind["created"] == ind["modified"] == ind["valid_from"] == "2026-03-01T12:30:15.123Z"
        assert all(TIMESTAMP.fullmatch(ind[t]) for t in ("created", "modified", "valid_from"))
        assert ind["object_marking_refs"] == [TLP_RED_ID]
        assert ind["created_by_ref"] == identity["id"]
        assert ind["labels"] and all(isinstance(label, str) for label in ind["labels"])
        assert ind["indicator_types"] == ["attribution"]
        custom = [k for k in ind if k.startswith("x")]
        assert custom and all(CUSTOM.fullmatch(k) for k in custom)
        assert ind["x_strongroom_key_id"] == "partner-7"
    json.dumps(bundle)  # plain JSON throughout


def test_no_decoy_value_pid_or_extract_is_disclosed(bundle, registry):
    text = json.dumps(bundle)
    for extract_id in registry.extract_ids:
        assert extract_id not in text
        for pid in registry.rows(extract_id)["eid"]:
            # as a number of its own: a random 7-digit pid turns up inside some hex digest
            # or id of the bundle in about one run in 15, which discloses nothing
            assert not re.search(rf"(?<![0-9a-f]){pid}(?![0-9a-f])", text), pid
    for ind in indicators(bundle):  # patterns hold digests and nothing else
        stripped = re.sub(r"'[0-9a-f]{64}'", "''", ind["pattern"])
        assert not re.search(r"\d", stripped)


def test_indicator_ids_are_stable_and_keyed(bundle, registry):
    pid = registry.rows("ext-1")["eid"][0]
    assert indicator_id(KEY, "ext-1", pid) == indicator_id(KEY, "ext-1", pid)
    assert indicator_id(KEY, "ext-1", pid) != indicator_id(bytes(32), "ext-1", pid)
    assert indicator_id(KEY, "ext-1", pid) in {i["id"] for i in indicators(bundle)}


# -- the pattern grammar (STIX 2.1 patterning, the subset written), checked independently ----

_TOKEN = re.compile(r"\s*(?:(\[)|(\])|(\()|(\))|(AND|OR)\b|([a-z0-9-]+:[a-z_][a-z0-9_]*"
                    r"(?:\[\*\]|\[\d+\])?)|(=)|('(?:[^'\\]|\\.)*'))")


def _tokens(pattern: str) -> list[tuple[str, str]]:
    kinds = ("[", "]", "(", ")", "op", "path", "=", "str")
    out, at = [], 0
    while at < len(pattern.rstrip()):
        found = _TOKEN.match(pattern, at)
        assert found, f"unexpected text at {at}: {pattern[at:at + 20]!r}"
        kind = next(k for k, g in zip(kinds, found.groups(), strict=True) if g is not None)
        out.append((kind, found.group(kinds.index(kind) + 1)))
        at = found.end()
    return out


def _valid(pattern: str) -> bool:
    """pattern := obs (OR obs)*; obs := '[' expr ']'; expr := term ((AND|OR) term)*;
    term := '(' expr ')' | path '=' string; path's object type is custom (x-…)."""
    tokens, at = _tokens(pattern), 0

    def take(kind: str) -> str:
        nonlocal at
        assert tokens[at][0] == kind, (kind, tokens[at])
        at += 1
        return tokens[at - 1][1]

    def expr() -> None:
        term()
        while at < len(tokens) and tokens[at][0] == "op":
            take("op")
            term()

    def term() -> None:
        if tokens[at][0] == "(":
            take("(")
            expr()
            take(")")
        else:
            assert take("path").startswith("x-")
            take("=")
            take("str")

    take("[")
    expr()
    take("]")
    while at < len(tokens):
        assert take("op") == "OR"
        take("[")
        expr()
        take("]")
    return True


def test_patterns_follow_the_stix_grammar(bundle):
    for ind in indicators(bundle):
        assert _valid(ind["pattern"])
        observations = parse_pattern(ind["pattern"])
        assert observations and all(len(terms) >= 4 for terms in observations)


@pytest.mark.parametrize("bad", [
    "[file:hashes.MD5 = 'abc']",
    "[x-strongroom-row:value_hmacs[*] = 'nothex']",
    "x-strongroom-row:value_hmacs[*] = '" + "a" * 64 + "'",
])
def test_foreign_patterns_are_refused(bad):
    with pytest.raises(Invalid):
        parse_pattern(bad)


# -- matching ----------------------------------------------------------------------------------


def leak(master: pl.DataFrame, registry: DecoyRegistry, extract_id: str) -> pl.DataFrame:
    dictionary = shipped_dictionary()
    copy = released(master, dictionary, 90)
    rows = registry.rows(extract_id).rename({"eid": "pid"})
    rows = rows.with_columns(pl.lit(-2, pl.Int64).alias(TRUTH)).select(copy.columns)
    return disguise(pl.concat([copy, rows.cast(copy.schema)]), 91).drop(TRUTH)


def own(bundle: dict, registry: DecoyRegistry, extract_id: str) -> set[str]:
    ids = {indicator_id(KEY, extract_id, p) for p in registry.rows(extract_id)["eid"]}
    return ids & {i["id"] for i in indicators(bundle)}


def test_a_disguised_csv_leak_matches_its_decoys_only(master, registry, bundle, tmp_path):
    path = tmp_path / "found.csv"
    leak(master, registry, "ext-1").with_columns(pl.all().cast(pl.String)).write_csv(path)
    matched = set(match_indicators(read_suspect(path), bundle, KEY))
    assert matched == own(bundle, registry, "ext-1")


def test_a_leak_rounded_ten_times_coarser_still_matches(master, registry, bundle):
    unit = units(shipped_dictionary())
    found = leak(master, registry, "ext-0")
    coarse = found.with_columns(
        ((pl.col(c) / (unit[COLUMNS[int(c.split()[1])]] * 10)).round(0)
         * unit[COLUMNS[int(c.split()[1])]] * 10).alias(c)
        for c in found.columns if c.startswith("field") and COLUMNS[int(c.split()[1])] in MEASURES)
    matched = set(match_indicators(coarse, bundle, KEY))
    expected = own(bundle, registry, "ext-0")
    assert matched <= expected and len(matched) >= 0.9 * len(expected)


def test_no_decoys_or_the_wrong_key_match_nothing(master, registry, bundle):
    plain = disguise(released(master, shipped_dictionary(), 92), 93).drop(TRUTH)
    assert match_indicators(plain, bundle, KEY) == []
    assert match_indicators(leak(master, registry, "ext-0"), bundle, bytes(32)) == []


def test_bad_requests_are_refused(registry):
    with pytest.raises(Invalid, match="16 bytes"):
        decoy_indicators(registry, ["ext-0"], b"short", key_id="k")
    with pytest.raises(Invalid, match="no decoys"):
        decoy_indicators(registry, ["ext-9"], KEY, key_id="k")
