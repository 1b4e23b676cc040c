"""row_order: the identity order both write paths send rows in."""

from __future__ import annotations

from hypothesis import given, strategies as st

from worker.tdengine.row_order import identity_order, run_starts, subtable_keys, tags_of

rows = st.lists(
    st.tuples(
        st.integers(0, 2**63 - 1) | st.integers(0, 3),  # user ids: any, or a few repeating
        st.integers(0, 127),
        st.integers(-(2**63), 2**63 - 1) | st.integers(0, 2),  # ts: any, or a few repeating
        st.integers(0, 5),
    ),
    max_size=40,
)


@given(rows)
def test_rows_come_in_order_of_identity_and_equal_ones_keep_their_order(
    drawn: list[tuple[int, int, int, int]],
) -> None:
    users, accounts, ts, event_id = ([row[k] for row in drawn] for k in range(4))
    subtables = subtable_keys(users, accounts)
    order = identity_order(subtables, ts, event_id)
    assert order == sorted(range(len(drawn)), key=lambda i: drawn[i])  # sorted() is stable
    assert tags_of(subtables) == (users, accounts)
    in_order = [subtables[i] for i in order]
    starts = run_starts(in_order)
    assert starts == [i for i in range(len(in_order)) if i == 0 or in_order[i] != in_order[i - 1]]
