"""Near-duplicate clusters: copies of one picture cluster, a chain through a borderline pair does not."""

import numpy as np

from pipeline.dedup.clusters import cluster_ids, dense_components


def _pairs(*edges: str) -> tuple[list[str], list[str]]:
    return [e[0] for e in edges], [e[1] for e in edges]


def test_an_edit_linked_to_one_copy_stays_out_of_the_originals_cluster() -> None:
    """o, c, C, D: the original and its copies (all match each other); e matches c only (a filtered
    version that passes against one re-encode); f matches e only."""
    a, b = _pairs("oc", "oC", "oD", "cC", "cD", "CD", "ce", "ef")
    plain = cluster_ids([], a, b)
    assert plain["e"] == plain["o"] == plain["f"]  # union-find joins the chain
    dense = cluster_ids([], a, b, dense=True)
    assert dense["o"] == dense["c"] == dense["C"] == dense["D"]
    assert dense["e"] != dense["o"] and dense["f"] != dense["o"]


def test_copies_of_a_hub_that_do_not_match_each_other_still_cluster() -> None:
    """Crops in opposite directions each match the original but not one another."""
    a, b = _pairs("hl", "hr", "ht", "hb")
    dense = cluster_ids([], a, b, dense=True)
    assert len({dense[x] for x in "hlrtb"}) == 1


def test_a_chain_hanging_off_a_cluster_stays_a_pair_of_its_own() -> None:
    """{0..4} all match; 4-5 and 5-6 hang off it: 5 and 6 are no copies of the cluster, but of each other."""
    clique = [(x, y) for x in range(5) for y in range(x + 1, 5)]
    edges = np.array([*clique, (4, 5), (5, 6)])
    labels = dense_components(7, edges[:, 0], edges[:, 1]).tolist()
    assert len(set(labels[:5])) == 1
    assert labels[5] == labels[6] != labels[0]
    assert len(set(dense_components(3, np.array([0, 1]), np.array([1, 2])).tolist())) == 1  # a chain of 3
