from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select

from strongroom.db import UTCDateTime, make_engine


def test_timestamps_come_back_aware_and_in_utc() -> None:
    engine = make_engine("sqlite://")
    meta = MetaData()
    table = Table("t", meta, Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
    meta.create_all(engine)
    paris = dt.timezone(dt.timedelta(hours=1))
    when = dt.datetime(2026, 4, 1, 12, 0, tzinfo=paris)
    with engine.begin() as con:
        con.execute(insert(table).values(id=1, at=when))
        got = con.execute(select(table.c.at)).scalar_one()
    assert got == when
    assert got.tzinfo == dt.UTC


def test_naive_timestamps_are_refused() -> None:
    engine = make_engine("sqlite://")
    meta = MetaData()
    table = Table("t", meta, Column("id", Integer, primary_key=True), Column("at", UTCDateTime))
    meta.create_all(engine)
    with pytest.raises(Exception, match="timezone-aware"), engine.begin() as con:
        con.execute(insert(table).values(id=1, at=dt.datetime(2026, 4, 1)))
