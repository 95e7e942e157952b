"""Majority labels and inter-annotator agreement (Cohen's kappa, Fleiss' kappa, Krippendorff's alpha).

Input: per group, the current good/bad label of each annotator (skips excluded). Output: the majority
label ("tie" when the votes are even) with the share of annotators agreeing, and run-wide agreement
figures for the stats page and ``gdt label stats``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from itertools import combinations


def majority(values: Iterable[str]) -> tuple[str, float]:
    """The majority of "good"/"bad" votes and the share agreeing with it.

    Even votes are a "tie" (share 0.5), not a negative: a reviewer decides it, or the classifier
    leaves it out, instead of learning "bad" from a disagreement.
    """
    counts = Counter(values)
    total = sum(counts.values())
    if total == 0:
        raise ValueError("majority of no votes")
    if counts["good"] == counts["bad"]:
        return "tie", counts["good"] / total
    label = "good" if counts["good"] > counts["bad"] else "bad"
    return label, counts[label] / total


def cohen_kappa(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two annotators over the items both labelled; None when undefined."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first.keys() | second.keys()) / (n * n)
    if expected == 1.0:
        return None  # both annotators used one and the same category throughout
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(units: Iterable[Iterable[str]]) -> float | None:
    """Fleiss' kappa over units, each the values its raters gave; None when undefined.

    Units may have different numbers of raters (k annotators, each labelling some groups): a unit's
    agreement is the share of agreeing rater pairs among its own pairs, and chance agreement comes from
    the pooled category shares. With equal raters per unit this is Fleiss' (1971) kappa exactly.
    Units with fewer than two values do not count.
    """
    per_unit, pooled = [], Counter()
    for unit in units:
        counts = Counter(unit)
        m = sum(counts.values())
        if m < 2:
            continue
        per_unit.append(sum(n * (n - 1) for n in counts.values()) / (m * (m - 1)))
        pooled.update(counts)
    if not per_unit:
        return None
    total = sum(pooled.values())
    expected = sum((n / total) ** 2 for n in pooled.values())
    if expected == 1.0:
        return None  # one category only: agreement is not measurable
    return (sum(per_unit) / len(per_unit) - expected) / (1.0 - expected)


def krippendorff_alpha(units: Iterable[Iterable[str]]) -> float | None:
    """Krippendorff's alpha (nominal) over units, each the values its coders gave (missing omitted).

    Units with fewer than two values are not pairable and do not count. None when undefined.
    """
    coincidence: Counter[tuple[str, str]] = Counter()
    for unit in units:
        values = list(unit)
        m = len(values)
        if m < 2:
            continue
        for i, j in combinations(range(m), 2):
            # each unordered pair adds both ordered pairs, weighted 1/(m-1)
            coincidence[(values[i], values[j])] += 1.0 / (m - 1)
            coincidence[(values[j], values[i])] += 1.0 / (m - 1)
    marginals: Counter[str] = Counter()
    for (c, _), weight in coincidence.items():
        marginals[c] += weight
    n = sum(marginals.values())
    if n <= 1:
        return None
    disagree_observed = sum(w for (c, k), w in coincidence.items() if c != k)
    disagree_expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k)
    if disagree_expected == 0:
        return None  # only one category used: agreement is not measurable
    return 1.0 - (n - 1) * disagree_observed / disagree_expected


def agreement_summary(by_group: Mapping[str, Mapping[str, str]]) -> dict[str, float | int | None]:
    """Run-wide figures from {group_id: {annotator: label}}.

    ``kappa`` is Cohen's kappa when exactly two annotators labelled groups in common; ``fleiss`` and
    ``alpha`` are Fleiss' kappa and Krippendorff's alpha over all groups with two or more labels (any
    number of annotators); ``disagreements`` and ``ties`` count those groups whose labels differ.
    """
    annotators = sorted({a for labels in by_group.values() for a in labels})
    shared = [labels for labels in by_group.values() if len(labels) >= 2]
    kappa = None
    if len(annotators) == 2:
        first, second = annotators
        kappa = cohen_kappa((labels[first], labels[second]) for labels in shared)
    return {
        "annotators": len(annotators),
        "groups_with_two_or_more": len(shared),
        "disagreements": sum(len(set(labels.values())) > 1 for labels in shared),
        "ties": sum(majority(labels.values())[0] == "tie" for labels in shared),
        "kappa": kappa,
        "fleiss": fleiss_kappa(labels.values() for labels in shared),
        "alpha": krippendorff_alpha(labels.values() for labels in shared),
    }
