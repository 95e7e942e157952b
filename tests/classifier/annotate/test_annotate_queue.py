"""Which group comes next: stratified order, labels_per_group, leases, undo, uncertainty, index use."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from classifier.annotate.app import open_state
from classifier.annotate.config import LabelConfig
from classifier.annotate.queue import NEXT_SQL, stratified_positions
from manifests.schemas import SCORES


def _open(run, **cfg):
    return open_state(run, LabelConfig(**cfg), progress=lambda _: None)


def _label_all(state, annotator_id, value="good"):
    seen = []
    while (group_id := state.queue.next(annotator_id)) is not None:
        state.store.record(annotator_id, group_id, value, "web", state.cfg.labels_per_group)
        state.queue.done(annotator_id, group_id)
        seen.append(group_id)
    return seen


def test_stratified_positions_spread_every_source_evenly():
    sources = np.repeat(np.arange(4), [400, 300, 200, 100])
    positions = stratified_positions(sources, seed=1)
    assert sorted(positions.tolist()) == list(range(1000))
    order = np.empty(1000, dtype=np.int64)
    order[positions] = np.arange(1000)
    for prefix in (50, 200, 500):
        shares = np.bincount(sources[order[:prefix]], minlength=4) / prefix
        assert np.allclose(shares, [0.4, 0.3, 0.2, 0.1], atol=2.5 / prefix + 0.01)
    assert not np.array_equal(positions, stratified_positions(sources, seed=2))


def test_one_annotator_sees_every_group_once(tmp_path, make_run):
    ids = make_run(tmp_path, 30)
    state = _open(tmp_path)
    ann = state.store.annotator_id("ann", create=True)
    seen = _label_all(state, ann)
    assert sorted(seen) == sorted(ids)
    assert state.store.open_count == 0


def test_reload_gives_the_same_group_until_it_is_labelled(tmp_path, make_run):
    make_run(tmp_path, 10)
    state = _open(tmp_path)
    ann = state.store.annotator_id("ann", create=True)
    first = state.queue.next(ann)
    assert state.queue.next(ann) == first
    state.store.record(ann, first, "skip", "web", 1)
    state.queue.done(ann, first)
    assert state.queue.next(ann) not in (first, None)


def test_labels_per_group_gives_distinct_annotators(tmp_path, make_run):
    ids = make_run(tmp_path, 20)
    state = _open(tmp_path, labels_per_group=2)
    a, b, c = (state.store.annotator_id(n, create=True) for n in "abc")
    assert sorted(_label_all(state, a)) == sorted(ids)
    assert state.store.open_count == 20  # one label each: still open
    assert sorted(_label_all(state, b)) == sorted(ids)
    assert _label_all(state, c) == []
    counts = state.store.query("SELECT group_id, count(DISTINCT annotator_id) FROM current GROUP BY group_id")
    assert {n for _, n in counts} == {2} and len(counts) == 20


def test_a_leased_group_is_not_handed_to_a_second_annotator(tmp_path, make_run):
    make_run(tmp_path, 5)
    state = _open(tmp_path, labels_per_group=1)
    a, b = (state.store.annotator_id(n, create=True) for n in "ab")
    got_a, got_b = state.queue.next(a), state.queue.next(b)
    assert got_a != got_b


def test_an_expired_lease_frees_the_group(tmp_path, make_run):
    make_run(tmp_path, 1)
    state = _open(tmp_path, labels_per_group=1, lease_seconds=0.01)
    a, b = (state.store.annotator_id(n, create=True) for n in "ab")
    group = state.queue.next(a)
    time.sleep(0.05)
    assert state.queue.next(b) == group


def test_undo_serves_the_group_again(tmp_path, make_run):
    make_run(tmp_path, 10)
    state = _open(tmp_path)
    ann = state.store.annotator_id("ann", create=True)
    labelled = []
    for _ in range(3):
        labelled.append(state.queue.next(ann))
        state.store.record(ann, labelled[-1], "good", "web", 1)
        state.queue.done(ann, labelled[-1])
    undone = state.store.undo(ann, 1)
    state.queue.give_back(ann, undone)
    assert undone == labelled[-1]
    assert state.queue.next(ann) == undone


def test_uncertain_order_puts_scores_near_one_half_first(tmp_path, make_run):
    ids = make_run(tmp_path, 8)
    scores = {ids[3]: 0.51, ids[5]: 0.4, ids[0]: 0.99, ids[1]: 0.05}
    folder = tmp_path / "classify" / "scores"
    folder.mkdir(parents=True)
    table = pa.Table.from_pylist(
        [{"group_id": g, "score": s, "model": "m"} for g, s in scores.items()], schema=SCORES
    )
    pq.write_table(table, folder / "part-00000.parquet")
    state = _open(tmp_path, order="uncertain")
    assert state.order == "uncertain"
    ann = state.store.annotator_id("ann", create=True)
    assert _label_all(state, ann)[:4] == [ids[3], ids[5], ids[1], ids[0]]


def test_uncertain_order_without_scores_falls_back_with_a_notice(tmp_path, make_run):
    make_run(tmp_path, 3)
    notes: list[str] = []
    state = open_state(tmp_path, LabelConfig(order="uncertain"), progress=notes.append)
    assert state.order == "stratified"
    assert any("no classifier scores" in n for n in notes)


def test_raising_labels_per_group_reopens_groups_at_start(tmp_path, make_run):
    make_run(tmp_path, 6)
    state = _open(tmp_path, labels_per_group=1)
    ann = state.store.annotator_id("ann", create=True)
    _label_all(state, ann)
    assert state.store.open_count == 0
    state.store.close()
    assert _open(tmp_path, labels_per_group=2).store.open_count == 6


def test_serving_reads_the_queue_through_its_index(tmp_path, make_run):
    make_run(tmp_path, 3)
    state = _open(tmp_path)
    plan = " | ".join(row[-1] for row in state.store.query(f"EXPLAIN QUERY PLAN {NEXT_SQL}", (0, 1, 64)))
    assert "INDEX queue_open (open=? AND pos>?)" in plan
    assert "TEMP B-TREE" not in plan  # no sort of the whole queue


def test_the_retrainers_order_goes_first_however_far_it_lags(tmp_path, make_run):
    """The order of the last retrain is served first, past groups labelled since (more of them than one
    request looks at: the retrainer may lag), then the stored order; each annotator from the start of the
    order, and ``upcoming`` names the order's next pick."""
    from classifier.annotate.queue import _PRIORITY_SCAN

    ids = make_run(tmp_path, _PRIORITY_SCAN + 40)
    state = _open(tmp_path, retrain_every=0, labels_per_group=2)
    order = list(reversed(ids))[: _PRIORITY_SCAN + 20]
    state.queue.set_priority(order)
    ann, other = (state.store.annotator_id(name, create=True) for name in ("ann", "other"))
    served = []
    for _ in range(_PRIORITY_SCAN + 10):
        group_id = state.queue.next(ann)
        served.append(group_id)
        assert state.queue.upcoming(ann, group_id) == order[len(served)]
        state.store.record(ann, group_id, "good", "web", 2)
        state.queue.done(ann, group_id)
    assert served == order[: _PRIORITY_SCAN + 10]
    # the other annotator still gets the order from its start: its labels are its own
    assert state.queue.next(other) == order[0]
    rest = _label_all(state, ann)
    assert rest[:10] == order[_PRIORITY_SCAN + 10 :]
    assert sorted(served + rest) == sorted(ids)
