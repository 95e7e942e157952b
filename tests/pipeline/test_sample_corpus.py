"""The sample corpus: deterministic, the same documents in three formats, and a truth file that holds.

One corpus is built per module; each test reads it with the small readers of ``sample_corpus_readers``
(not the project's), so a mistake in the corpus cannot hide behind the same mistake in `extract`. One
test then runs the real extract code over all three formats and compares its groups with the truth.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import imagehash
import pytest
from PIL import Image

from pipeline.errors import UserError
from pipeline.sample_corpus import build, documents, truth
from tests.pipeline.sample_corpus_readers import (
    candidate_groups,
    kept,
    load_ref,
    parse_pages,
    read_html,
    read_mmc4,
    read_obelics,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("sample") / "corpus")


@pytest.fixture(scope="module")
def truth_json(corpus: Path) -> dict:
    return json.loads((corpus / "truth.json").read_text())


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ---------------------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_gives_identical_files_across_processes(corpus: Path, tmp_path: Path) -> None:
    # a second build through the command module, in a fresh interpreter with another hash seed
    out = tmp_path / "again"
    script = (
        "import argparse, sys\n"
        "from pipeline.sample_corpus import command\n"
        "parser = argparse.ArgumentParser()\n"
        "command.register(parser.add_subparsers())\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.func(args))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run(
        [sys.executable, "-c", script, "sample-corpus", str(out), "--seed", "0"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert _hashes(out) == _hashes(corpus)
    assert "good" in done.stdout and "documents" in done.stdout


@pytest.mark.slow
def test_another_seed_gives_another_corpus(truth_json: dict) -> None:
    other = truth.truth(documents.plan(seed=1))
    assert other["seed"] == 1
    assert [d["image_refs"] for d in other["documents"]] != [d["image_refs"] for d in truth_json["documents"]]


def test_three_formats_hold_the_same_documents(corpus: Path, truth_json: dict) -> None:
    obelics, mmc4, pages = read_obelics(corpus), read_mmc4(corpus), read_html(corpus)
    urls = [d["url"] for d in truth_json["documents"]]
    assert list(obelics) == urls == list(mmc4)
    assert sorted(pages) == sorted(urls)
    for url in urls:
        assert obelics[url] == mmc4[url] == pages[url], url
        assert obelics[url][-1][0] == "text"  # MMC4 anchors an image on the text after it
    for doc in truth_json["documents"]:
        images = [v for kind, v in obelics[doc["url"]] if kind == "image"]
        assert len(images) == doc["n_image_refs"] == len(doc["image_refs"])
        assert images == [load_ref(ref, corpus) for ref in doc["image_refs"]]
        assert doc["url"] == f"https://sample.gdt/{doc['slug']}"


def test_html_variants_resolve_to_the_same_image(corpus: Path) -> None:
    seen = Counter()
    for page in parse_pages(corpus):
        for kind, attrs in page.variants:
            seen[kind] += 1
            if kind == "lazy":
                assert attrs["src"].startswith("data:image/gif;base64,") and len(attrs["src"]) < 200
            elif kind == "picture":
                assert attrs["source"] == attrs["src"]
            else:
                candidates = [c.split() for c in attrs["srcset"].split(",")]
                largest = max(candidates, key=lambda c: int(c[1].rstrip("w")))
                assert largest[0] == attrs["src"]
                assert all((corpus / "html" / c[0]).resolve().is_file() for c in candidates)
    assert min(seen["lazy"], seen["picture"], seen["srcset"]) >= 5, seen


def test_truth_groups_are_exactly_the_candidate_groups(corpus: Path, truth_json: dict) -> None:
    blocks = read_obelics(corpus)
    expected = {(g["doc_url"], tuple(g["positions"])) for g in truth_json["groups"]}
    found = {(url, tuple(group)) for url, doc in blocks.items() for group in candidate_groups(doc)}
    assert found == expected
    assert len(expected) == len(truth_json["groups"])
    # the specimen page holds a run of ten kept glyphs, split into two windows of five
    specimen = [
        g["positions"] for g in truth_json["groups"] if g["doc_url"].endswith("font-specimen-dejavuserif")
    ]
    assert [len(p) for p in specimen] == [5, 5]


def test_broken_references_are_the_planted_ones(corpus: Path, truth_json: dict) -> None:
    docs = {d["url"]: d for d in truth_json["documents"]}
    broken = {(b["doc_url"], b["position"]): b["kind"] for b in truth_json["broken_references"]}
    assert set(broken.values()) == {"missing", "truncated", "not_image", "svg"}
    grouped = {(g["doc_url"], p) for g in truth_json["groups"] for p in g["positions"]}
    for doc in docs.values():
        for position, ref in enumerate(doc["image_refs"]):
            data = load_ref(ref, corpus)
            kind = broken.get((doc["url"], position))
            if kind == "missing":
                assert data is None
            else:
                assert data is not None, ref
            if kind is not None:
                assert not kept(data) and (doc["url"], position) not in grouped
    # broken references sit inside runs: the group's positions step over them
    inside = [
        b for b in truth_json["broken_references"]
        if any(g["doc_url"] == b["doc_url"] and g["positions"][0] < b["position"] < g["positions"][-1]
               for g in truth_json["groups"])
    ]  # fmt: skip
    assert len(inside) >= 12


def test_every_image_file_is_referenced(corpus: Path, truth_json: dict) -> None:
    referenced = {
        ref for d in truth_json["documents"] for ref in d["image_refs"] if not ref.startswith("data:")
    }
    srcset_small = {
        (corpus / "html" / c.split()[0]).resolve().relative_to(corpus).as_posix()
        for page in parse_pages(corpus)
        for kind, attrs in page.variants
        if kind == "srcset"
        for c in attrs["srcset"].split(",")
    }
    on_disk = {p.relative_to(corpus).as_posix() for p in (corpus / "images").iterdir()}
    missing = {r for r in referenced if not (corpus / r).exists()}
    assert len(missing) == sum(b["kind"] == "missing" for b in truth_json["broken_references"])
    assert on_disk == (referenced | srcset_small) - missing
    assert all(r.startswith("images/") and "/" not in r[len("images/") :] for r in referenced)
    assert any(
        ref.startswith("data:image/png;base64,") for d in truth_json["documents"] for ref in d["image_refs"]
    )


def _phash(corpus: Path, ref: str) -> imagehash.ImageHash:
    data = load_ref(ref, corpus)
    assert data is not None
    return imagehash.phash(Image.open(io.BytesIO(data)))


def test_near_duplicates_are_close_and_unrelated_groups_are_not(corpus: Path, truth_json: dict) -> None:
    pairs = truth_json["near_duplicate_images"]
    assert len(pairs) >= 20
    for a, b in pairs:
        assert a != b and kept(load_ref(a, corpus)) and kept(load_ref(b, corpus))
        assert _phash(corpus, a) - _phash(corpus, b) <= 10, (a, b)
    docs = {d["url"]: d for d in truth_json["documents"]}
    bad = [g for g in truth_json["groups"] if g["category"] in ("unrelated", "mixed")]
    assert len(bad) >= 30
    for g in bad:
        hashes = [_phash(corpus, docs[g["doc_url"]]["image_refs"][p]) for p in g["positions"]]
        assert min(a - b for a, b in itertools.combinations(hashes, 2)) >= 16, g


def test_duplicate_groups_boilerplate_and_shared_original(truth_json: dict) -> None:
    docs = {d["url"]: d for d in truth_json["documents"]}
    groups = {(g["doc_url"], tuple(g["positions"])): g for g in truth_json["groups"]}
    near = {tuple(p) for p in truth_json["near_duplicate_images"]}
    kinds = Counter()
    for a, b in truth_json["duplicate_groups"]:
        ga, gb = groups[a["doc_url"], tuple(a["positions"])], groups[b["doc_url"], tuple(b["positions"])]
        assert a["doc_url"] != b["doc_url"] and ga["category"] == gb["category"]
        refs_a = [docs[a["doc_url"]]["image_refs"][p] for p in a["positions"]]
        refs_b = [docs[b["doc_url"]]["image_refs"][p] for p in b["positions"]]
        same = refs_a == refs_b
        assert same or all(tuple(sorted(pair)) in near for pair in zip(refs_a, refs_b, strict=True))
        kinds["exact" if same else "near"] += 1
    assert kinds["exact"] >= 3 and kinds["near"] >= 5

    (logo,) = truth_json["boilerplate_images"]
    with_logo = [d for d in docs.values() if logo in d["image_refs"]]
    assert len(with_logo) >= 20
    in_groups = [docs[g["doc_url"]]["image_refs"][p] for g in truth_json["groups"] for p in g["positions"]]
    assert logo not in in_groups

    assert truth_json["shared_originals"]
    for shared in truth_json["shared_originals"]:
        edit_groups = [
            frozenset(docs[g["doc_url"]]["image_refs"][p] for p in g["positions"])
            for g in truth_json["groups"]
            if g["category"] == "edit"
            and shared in [docs[g["doc_url"]]["image_refs"][p] for p in g["positions"]]
        ]
        assert len(set(edit_groups)) >= 8, shared  # eight different edit pairs (a re-post may repeat one)


def test_edit_pairs_are_before_and_after_pictures_of_one_group(truth_json: dict) -> None:
    docs = {d["url"]: d for d in truth_json["documents"]}
    groups = [
        {docs[g["doc_url"]]["image_refs"][p] for p in g["positions"]}
        for g in truth_json["groups"]
        if g["category"] == "edit"
    ]
    pairs = truth_json["edit_pairs"]
    assert len({p["kind"] for p in pairs}) >= 15  # the photo edits and the filter manual's filters
    for pair in pairs:
        assert pair["original"] != pair["edited"]
        assert any({pair["original"], pair["edited"]} <= g for g in groups), pair
    near = {frozenset(p) for p in truth_json["near_duplicate_images"]}
    assert not any(frozenset((p["original"], p["edited"])) in near for p in pairs)


def test_corpus_size_and_mix(corpus: Path, truth_json: dict) -> None:
    n_docs, n_files = len(truth_json["documents"]), len(list((corpus / "images").iterdir()))
    assert 150 <= n_docs <= 240 and 600 <= n_files <= 900
    assert sum(p.stat().st_size for p in corpus.rglob("*") if p.is_file()) < 30 * 1024**2
    categories = Counter((g["label"], g["category"]) for g in truth_json["groups"])
    for key in [("good", "font"), ("good", "edit"), ("good", "multiview"), ("good", "series"),
                ("bad", "unrelated"), ("bad", "mixed")]:  # fmt: skip
        assert categories[key] >= 5, categories
    no_group = {d["url"] for d in truth_json["documents"]} - {g["doc_url"] for g in truth_json["groups"]}
    assert len(no_group) >= 10  # the icon-only pages
    names = [p.suffix for p in (corpus / "images").iterdir()]
    assert names.count(".jpg") > names.count(".png") > 50


def test_extract_finds_the_truth_groups_in_every_format(corpus: Path, truth_json: dict) -> None:
    from pipeline.extract.config import ExtractConfig
    from pipeline.extract.readers import plan_parts, read_part
    from pipeline.extract.stage import doc_id_of, extract_documents

    expected = {(doc_id_of(g["doc_url"]), tuple(g["positions"])) for g in truth_json["groups"]}
    results = []
    for fmt, path in (("obelics", "documents.parquet"), ("mmc4", "documents.jsonl.gz"), ("html", "html")):
        cfg = ExtractConfig(input=str(corpus / path), format=fmt)
        docs = [doc for spec in plan_parts(corpus / path, fmt, 1000) for doc in read_part(spec)]
        groups = extract_documents(docs, cfg, corpus)["groups"].to_pylist()
        assert {(g["doc_id"], tuple(g["positions"])) for g in groups} == expected, fmt
        results.append(sorted((g["group_id"], tuple(g["image_ids"])) for g in groups))
    assert results[0] == results[1] == results[2]


@pytest.mark.slow
def test_rebuild_replaces_an_earlier_corpus(tmp_path: Path) -> None:
    out = tmp_path / "corpus"
    out.mkdir()
    (out / "truth.json").write_text(json.dumps({"generator": truth.GENERATOR, "seed": 9}))
    (out / "images").mkdir()
    (out / "images" / "stale.jpg").write_bytes(b"old")
    build(out)
    assert json.loads((out / "truth.json").read_text())["seed"] == 0
    assert not (out / "images" / "stale.jpg").exists()


def test_refuses_a_folder_that_is_not_a_corpus(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        build(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert [p.name for p in tmp_path.parent.iterdir() if p.name.startswith(f".{tmp_path.name}.")] == []
