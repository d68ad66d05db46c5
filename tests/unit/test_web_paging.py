"""Lists that can grow: a search narrows them by every word, pages walk through the rest."""

from __future__ import annotations

from strongroom.server.web.pages import paged


def test_a_search_keeps_rows_holding_every_word_in_any_case() -> None:
    rows = ["Ada Admin custodian", "Rex Researcher uni", "Ada Lovelace uni"]
    found = paged(rows, str, "ada UNI")
    assert found.items == ["Ada Lovelace uni"] and (found.matched, found.total) == (1, 3)


def test_pages_are_bounded_and_their_links_keep_the_search() -> None:
    rows = [f"person {i}" for i in range(120)]
    first = paged(rows, str, page=0, per_page=50)
    assert first.page == 1 and first.pages == 3 and first.items[0] == "person 0"
    last = paged(rows, str, page=99, per_page=50)
    assert last.page == 3 and len(last.items) == 20
    assert paged(rows, str, "person", page=2, per_page=50).link(3) == "?q=person&page=3"
    assert paged([], str).pages == 1  # an empty list is one empty page


def test_two_lists_on_one_page_each_keep_the_other_s_page() -> None:
    rows = [f"output {i}" for i in range(120)]
    mine = paged(rows, str, "output", page=2, keep=[("others_page", "3")])
    assert mine.link(3) == "?q=output&others_page=3&page=3"
    others = paged(rows, str, page=3, param="others_page", keep=[("page", "2")])
    assert others.link(2) == "?page=2&others_page=2"
