from hypothesis import given
from hypothesis import strategies as st

from pipeline.extract.grouping import KeptImage, candidate_groups, windows


def kept(gaps):
    return [KeptImage(position=i, text_chars_before=g) for i, g in enumerate(gaps)]


def test_long_text_ends_a_run_and_singletons_are_not_groups():
    groups = candidate_groups(kept([0, 10, 5000, 0, 0, 3000]), 2, 8, 1000)
    assert groups == [[0, 1], [2, 3, 4]]


def test_long_runs_split_into_near_equal_windows():
    assert [len(w) for w in windows(list(range(9)), 2, 8, None)] == [5, 4]
    assert [len(w) for w in windows(list(range(17)), 2, 8, None)] == [6, 6, 5]


def test_sliding_windows_with_a_stride():
    assert windows(list(range(10)), 2, 8, 2) == [list(range(0, 8)), list(range(2, 10))]


@given(st.lists(st.integers(0, 3000), max_size=60), st.integers(1, 4), st.integers(4, 9))
def test_windows_are_ordered_disjoint_and_within_bounds(gaps, min_size, max_size):
    groups = candidate_groups(kept(gaps), min_size, max_size, 1000)
    flat = [i for g in groups for i in g]
    assert flat == sorted(set(flat))
    assert all(min_size <= len(g) <= max_size for g in groups)
    assert all(g == list(range(g[0], g[0] + len(g))) for g in groups)
