"""Within-group and across-group rules on hand-built groups."""

from itertools import combinations

from pipeline.dedup.config import DedupConfig
from pipeline.dedup.groups import GroupKey, dedup_within, duplicate_groups, jaccard_pairs


def _group(gid: str, ids: list[str], doc: str = "doc") -> dict:
    return {
        "group_id": gid,
        "doc_id": doc,
        "source": f"https://x/{doc}",
        "image_ids": ids,
        "positions": [10 + k for k in range(len(ids))],
        "context": [{"alt": i, "text_before": None, "text_after": None} for i in ids],
    }


def test_first_in_document_order_stays_and_each_removal_is_a_drop() -> None:
    group = _group("g", ["a", "b", "a2", "c", "b2"])
    linked = {frozenset(("a", "a2")), frozenset(("b", "b2"))}
    kept, drops = dedup_within(group, linked, set(), min_group_size=2)
    assert kept is not None
    assert kept["image_ids"] == ["a", "b", "c"]
    assert kept["positions"] == [10, 11, 13]
    assert [c["alt"] for c in kept["context"]] == ["a", "b", "c"]
    assert kept["group_id"] == "g"
    assert {(d["id"], d["detail"], d["reason"]) for d in drops} == {
        ("doc/12", "duplicate_of=a", "duplicate_within_group"),
        ("doc/14", "duplicate_of=b", "duplicate_within_group"),
    }


def test_chains_do_not_join_and_exact_repeats_count_as_duplicates() -> None:
    """A~B and B~C (a re-encode close to both an original and an edit of it): B goes as a copy of A,
    C is compared with the images that stay, not with B, and stays."""
    kept, drops = dedup_within(
        _group("g", ["a", "x", "b", "c", "x"]), {frozenset(("a", "b")), frozenset(("b", "c"))}, set(), 2
    )
    assert kept is not None and kept["image_ids"] == ["a", "x", "c"]
    assert sorted((d["id"], d["detail"]) for d in drops) == [
        ("doc/12", "duplicate_of=a"),
        ("doc/14", "duplicate_of=x"),
    ]


def test_a_copy_of_a_kept_image_goes_even_after_a_removed_one() -> None:
    linked = {frozenset(("a", "b")), frozenset(("b", "c")), frozenset(("a", "c"))}
    kept, drops = dedup_within(_group("g", ["a", "b", "c", "d"]), linked, set(), 2)
    assert kept is not None and kept["image_ids"] == ["a", "d"]
    assert sorted(d["detail"] for d in drops) == ["duplicate_of=a", "duplicate_of=a"]


def test_edit_pairs_of_one_original_survive_its_copy() -> None:
    """Before/after page: original, a re-encoded copy of it, two edits; the copy matches an edit too."""
    ids = ["original", "copy", "edit1", "edit2"]
    linked = {frozenset(("original", "copy")), frozenset(("copy", "edit1"))}
    kept, drops = dedup_within(_group("g", ids), linked, set(), 2)
    assert kept is not None and kept["image_ids"] == ["original", "edit1", "edit2"]
    assert [d["detail"] for d in drops] == ["duplicate_of=original"]


def test_group_left_too_small_is_dropped_and_boilerplate_leaves_quietly() -> None:
    kept, drops = dedup_within(_group("g", ["logo", "a", "a2"]), {frozenset(("a", "a2"))}, {"logo"}, 2)
    assert kept is None
    assert [d["reason"] for d in drops] == ["duplicate_within_group", "group_too_small"]
    assert drops[-1]["id"] == "g" and drops[-1]["kind"] == "group"


def _key(gid: str, clusters: set[str], score: float = 0.5, doc: int = 0) -> GroupKey:
    return GroupKey(gid, frozenset(clusters), score, (doc, 0), len(clusters))


def test_shared_original_does_not_collapse_edit_pairs() -> None:
    cfg = DedupConfig()
    pairs = [_key(f"edit{k}", {"original", f"edit{k}"}, doc=k) for k in range(50)]
    triples = [_key(f"t{k}", {"original", "filter", f"v{k}"}, doc=100 + k) for k in range(3)]
    assert jaccard_pairs(pairs + triples, cfg) == []


def test_duplicate_groups_keep_the_better_score_then_the_earlier_document() -> None:
    cfg = DedupConfig()
    groups = [
        _key("early", {"a", "b", "c"}, score=0.7, doc=1),
        _key("best", {"a", "b", "c"}, score=0.9, doc=5),
        _key("near", {"a", "b", "c", "d"}, score=0.2, doc=0),
        _key("other", {"x", "y"}, score=0.99, doc=0),
        _key("tie1", {"p", "q"}, score=0.5, doc=3),
        _key("tie0", {"p", "q"}, score=0.5, doc=2),
    ]
    dropped = duplicate_groups(groups, jaccard_pairs(groups, cfg))
    assert dropped == {"early": "best", "near": "best", "tie1": "tie0"}


def test_prefix_filtering_finds_every_pair_a_full_comparison_finds() -> None:
    import random

    rng = random.Random(3)
    cfg = DedupConfig(group_jaccard=0.5, min_shared_clusters=1)
    universe = [f"c{k}" for k in range(30)]
    groups = [_key(f"g{k}", set(rng.sample(universe, rng.randint(2, 6)))) for k in range(200)]
    expected = {
        (x, y)
        for x, y in combinations(range(len(groups)), 2)
        if len(groups[x].clusters & groups[y].clusters) / len(groups[x].clusters | groups[y].clusters) >= 0.5
    }
    assert set(jaccard_pairs(groups, cfg)) == expected
    assert expected  # the draw does hold duplicates
