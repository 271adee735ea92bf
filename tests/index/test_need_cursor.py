"""iter_need with a cursor: a new walk continues after the last entry the old one gave."""

from __future__ import annotations

import itertools

from index_helpers import DEV_A, make_dir, make_file

from p2psync.index import IndexStore, NeedCursor


def test_a_new_walk_continues_after_the_last_entry_given(store: IndexStore) -> None:
    store.update_remote("f", DEV_A, [make_file(f"a/{i:02d}") for i in range(10)])
    cursor = NeedCursor()
    first = store.iter_need("f", 3, cursor)
    taken = [fi.name for fi in itertools.islice(first, 4)]
    first.close()
    assert taken == ["a/00", "a/01", "a/02", "a/03"]

    # arrived since: before the cursor (left for the next round), and after it
    store.update_remote("f", DEV_A, [make_file("0-early"), make_file("b/late"), make_dir("c")])

    rest = [fi.name for fi in store.iter_need("f", 3, cursor)]
    assert rest == [*(f"a/{i:02d}" for i in range(4, 10)), "b/late"]  # c's phase is passed
    assert [fi.name for fi in store.iter_need("f")][:2] == ["c", "0-early"]
