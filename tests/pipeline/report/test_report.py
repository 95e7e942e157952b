"""The curation report on a complete hand-built run and on the extracted sample corpus: numbers, drops,
distributions, galleries, escaping, "not run" sections and the command line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from PIL import Image

from manifests.ledger import read_manifest
from pipeline.cli import main as gdt
from pipeline.errors import UserError
from pipeline.report.build import gather, write_report
from pipeline.report.categories import CategoryResolver, shard_categories
from pipeline.report.config import ReportConfig
from pipeline.report.reading import Reservoir
from pipeline.report.svg import bar_chart
from pipeline.report.thumbs import ThumbnailSet
from tests.pipeline.report.inputs import EXPECTED, HOSTILE
from tests.pipeline.report.page import SECTIONS, parse

# ---------------------------------------------------------------------------------------------------------
# A complete run built by hand
# ---------------------------------------------------------------------------------------------------------


def test_funnel_shows_every_step_with_its_number(hand_run, hand_report, tmp_path):
    run, ids = hand_run
    steps = {s.key: s.count for s in gather(run, tmp_path, ReportConfig(), Path(ids["truth"]))["funnel"]}
    assert steps == EXPECTED["funnel"]
    page = parse(hand_report)
    for key, count in EXPECTED["funnel"].items():
        assert f"{count:,}" in page.text[key].split()
    assert page.text["funnel-chart"].count("not run") == 0


def test_drops_are_counted_by_reason_with_examples_that_show_what_was_dropped(
    hand_run, hand_report, tmp_path
):
    run, ids = hand_run
    drops = {s.stage: s for s in gather(run, tmp_path, ReportConfig(), None)["drops"]}
    for stage, reasons in EXPECTED["drops"].items():
        assert {r.reason: r.count for r in drops[stage].reasons} == reasons
    broken = drops["extract"].reasons[0].examples[0]
    assert broken.image_ids == [] and broken.text == f"images/{HOSTILE}.png"  # the reference as written
    within = next(r for r in drops["dedup"].reasons if r.reason == "duplicate_within_group").examples[0]
    assert len(within.image_ids) == 1  # the stored duplicate image, resolved through the document
    low = drops["classify"].reasons[0].examples[0]
    assert low.id == ids["d4"] and len(low.image_ids) == 4
    assert drops["embed"].reasons == [] and not drops["embed"].ran
    page = parse(hand_report)
    assert "fetch_error" in page.text["drops-extract"] and "gone" in page.text["drops-extract"]
    assert "embed not run" in page.text["drops-embed"]


def test_group_sizes_and_categories_use_the_best_source(hand_run, tmp_path):
    run, ids = hand_run
    dist = gather(run, tmp_path, ReportConfig(), Path(ids["truth"]))["distributions"]
    kept_sizes = {int(label.split()[0]): counts[1] for label, counts in dist.sizes if counts[1]}
    assert kept_sizes == EXPECTED["kept_sizes"]
    assert {c: n[1] for c, n in dist.categories if n[1]} == EXPECTED["kept_categories"]
    assert dist.category_sources == EXPECTED["category_sources"]
    assert dist.candidates == 7 and dist.kept == 4
    # d0's truth says "series", but its caption template says "font": the caption wins over the truth.
    resolver = CategoryResolver.for_run(run, Path(ids["truth"]), ["train-000000.tar", "val-000000.tar"])
    assert resolver.of(ids["d0"]) == ("font", "caption")
    assert resolver.of(ids["d5"]) == ("unknown", "unknown")
    without_truth = gather(run, tmp_path, ReportConfig(), None)["distributions"]
    assert dict((c, n[1]) for c, n in without_truth.categories)["unknown"] == 1  # d2: context template only


def test_shard_categories_are_read_from_the_samples_json(hand_run):
    run, ids = hand_run
    assert shard_categories(run, ["train-000000.tar", "val-000000.tar", "../escape.tar"]) == {
        ids["d3b"]: "portrait"
    }


def test_classifier_section_has_metrics_plots_and_score_histogram(hand_run, hand_report):
    run, _ = hand_run
    out = hand_report.parent
    plots = sorted((out / "img" / "classify").glob("*.png"))
    assert [p.name for p in plots] == sorted(p.name for p in (run / "classify" / "model").glob("*.png"))
    for plot in plots:
        assert Image.open(plot).format == "PNG"
    page = parse(hand_report)
    assert "logreg" in page.text["classifier-summary"]
    assert "roc_auc" in page.text["classifier-heldout"]
    confusion = " ".join(page.text["confusion"].split())
    assert "labelled good 3 0" in confusion and "labelled bad 0 2" in confusion  # tp fn / fp tn
    bars = [int(t) for t in page.text["scores-chart"].split() if t.isdigit()]
    assert sum(bars) == 7 and "threshold 0.500" in page.text["classifier"]


def test_galleries_show_kept_rejected_and_duplicate_groups(hand_run, hand_report, tmp_path):
    run, ids = hand_run
    galleries = gather(run, tmp_path, ReportConfig(), None)["galleries"]
    kept = {card.group_id: card for card in galleries.kept}
    assert set(kept) == {ids["d0"], ids["d1"], ids["d2"], ids["d3b"]} and galleries.kept_total == 4
    assert kept[ids["d1"]].captions == [f"{HOSTILE} {i}" for i in range(3)]
    assert kept[ids["d1"]].template == "story@2#def"
    assert len(kept[ids["d2"]].image_ids) == 3  # the dedup-cleaned group, not the candidate
    assert [(c.group_id, c.score) for c in galleries.rejected] == [(ids["d4"], 0.1)]
    [pair] = galleries.duplicates
    assert (pair.duplicate.group_id, pair.kept.group_id) == (ids["d5"], ids["d0"])
    assert pair.kept.image_ids and pair.duplicate.image_ids
    html = hand_report.read_text()
    for group_id in (ids["d0"], ids["d4"], ids["d5"]):
        assert f'data-group-id="{group_id}"' in html


def test_galleries_are_a_seeded_sample_of_bounded_size(hand_run, tmp_path):
    run, _ = hand_run
    cfg = ReportConfig(gallery_groups=2, seed=3)
    first = [c.group_id for c in gather(run, tmp_path, cfg, None)["galleries"].kept]
    again = [c.group_id for c in gather(run, tmp_path, cfg, None)["galleries"].kept]
    assert len(first) == 2 and first == again


def test_dedup_clusters_and_shard_statistics(hand_run, hand_report):
    run, _ = hand_run
    page = parse(hand_report)
    facts = page.text["dedup-facts"]
    assert "near-duplicate clusters" in facts and "pairs found by phash" in facts and "vector" in facts
    sizes = " ".join(page.text["clusters-chart"].split())
    assert "2 images 1" in sizes and "3 images 1" in sizes  # one cluster of each size
    html = hand_report.read_text()
    assert "no preview" in html  # the corrupt image of the largest cluster has no thumbnail, no broken img
    totals = page.text["shard-totals"].split()
    assert totals[:4] == ["split", "shards", "groups", "images"]
    train = totals[totals.index("train") : totals.index("train") + 4]
    assert train == ["train", "1", str(EXPECTED["shards"]["train"]), "10"]  # d0 4 + d1 3 + d2 3 (cleaned)
    tar_size = (run / "shard" / "train-000000.tar").stat().st_size
    assert f"{tar_size / 1024:,.1f} KiB" in page.text["shard-table"]


def test_every_image_on_the_page_is_a_written_thumbnail(hand_report):
    out = hand_report.parent
    srcs = parse(hand_report).images
    assert srcs and all(not s.startswith(("http:", "https:", "//")) for s in srcs)
    for src in srcs:
        image = Image.open(out / src)
        image.load()
        if src.startswith("img/classify/"):
            assert image.format == "PNG"
        else:
            assert image.format == "JPEG" and max(image.size) <= ReportConfig().thumb_px


def test_document_text_is_escaped(hand_report):
    html = hand_report.read_text()
    assert "<script" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(" in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_config_and_every_manifest_are_included(hand_run, hand_report):
    run, _ = hand_run
    page = parse(hand_report)
    assert "min_side: 150" in page.text["config"]
    for stage in ("extract", "classify", "dedup", "caption", "shard"):
        assert read_manifest(run / stage).config_hash in page.text[stage]
    assert "details" in hand_report.read_text()


def test_a_run_where_nothing_has_run_shows_not_run_notes(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    page = parse(write_report(run))
    for section in SECTIONS:
        assert section in page.text
    for section in (
        "classifier",
        "dedup",
        "shards",
        "distributions",
        "gallery-rejected",
        "gallery-duplicates",
    ):
        assert "not run" in page.text[section]
    assert "not run" in page.text["documents"] and page.images == []


def test_a_new_report_replaces_the_old_one_and_foreign_folders_are_refused(hand_run, tmp_path):
    run, _ = hand_run
    out = tmp_path / "report"
    write_report(run, out, ReportConfig(gallery_groups=1))
    (out / "img" / "stale.jpg").write_bytes(b"old")
    write_report(run, out)
    assert not (out / "img" / "stale.jpg").exists() and (out / "index.html").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporaries left
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    with pytest.raises(UserError, match="does not hold a report"):
        write_report(run, foreign)
    with pytest.raises(UserError, match="run folder not found"):
        write_report(tmp_path / "missing")
    with pytest.raises(UserError, match="truth file not found"):
        write_report(run, out, truth=tmp_path / "missing.json")


def test_command_line_writes_the_report_and_prints_where(hand_run, tmp_path, capsys):
    run, ids = hand_run
    out = tmp_path / "cli-report"
    code = gdt(
        ["report", "--run", str(run), "--out", str(out), "--truth", ids["truth"], "--set", "gallery_groups=1"]
    )
    assert code == 0
    assert str((out / "index.html").resolve()) in capsys.readouterr().out
    assert out.joinpath("index.html").read_text().count('class="card"') == 1 + 1 + 2  # kept, rejected, pair
    assert gdt(["report", "--run", str(run), "--set", "gallery_groups=-1", "--out", str(out)]) == 2


# ---------------------------------------------------------------------------------------------------------
# Pieces
# ---------------------------------------------------------------------------------------------------------


def test_bar_chart_escapes_labels_and_marks_missing_values():
    svg = str(bar_chart([("<b>a</b>", [3]), ("b", [None])], title="t&t", chart_id="c"))
    assert "<b>" not in svg and "&lt;b&gt;a&lt;/b&gt;" in svg and "t&amp;t" in svg
    assert svg.count("<rect") == 1 and "not run" in svg


def test_reservoir_is_bounded_seeded_and_drawn_from_the_stream():
    def sample(seed, name="s"):
        reservoir = Reservoir(5, seed, name)
        for k in range(1000):
            reservoir.add(k)
        return reservoir

    first = sample(0)
    assert len(first.items) == 5 and first.seen == 1000 and first.items == sample(0).items
    assert set(first.items) <= set(range(1000)) and max(first.items) >= 5  # later items get in
    assert sample(0, "other").items != first.items


def test_thumbnails_are_made_only_for_stored_decodable_images(hand_run, tmp_path):
    run, ids = hand_run
    real = pq.read_table(run / "extract" / "images" / "part-00001.parquet", columns=["image_id"])[0][
        0
    ].as_py()
    thumbs = ThumbnailSet(48)
    thumbs.want([real, ids["corrupt"], "not-an-image-id"])
    assert thumbs.write(run, tmp_path) == 1
    assert thumbs.src(ids["corrupt"]) is None and thumbs.src("not-an-image-id") is None
    image = Image.open(io.BytesIO((tmp_path / thumbs.src(real)).read_bytes()))
    assert image.format == "JPEG" and max(image.size) <= 48


# ---------------------------------------------------------------------------------------------------------
# The sample corpus after a real extract
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_report_of_an_extracted_sample_corpus(sample_run, sample_corpus, sample_report):
    manifest = read_manifest(sample_run / "extract")
    page = parse(sample_report)
    expected = {
        "documents": manifest.counts_in["documents"],
        "references": manifest.counts_in["references"],
        "images": manifest.counts_out["images"],
        "candidates": manifest.counts_out["groups"],
    }
    for key, count in expected.items():
        assert f"{count:,}" in page.text[key].split()
    for key in ("labelled", "kept", "deduplicated", "captioned", "sharded"):
        assert "not run" in page.text[key]
    for reason, count in manifest.dropped.items():
        assert f"{reason} ({count:,})" in page.text["drops-extract"]
    for section in ("classifier", "dedup", "shards", "gallery-rejected", "gallery-duplicates"):
        assert "not run" in page.text[section]
    truth = json.loads((sample_corpus / "truth.json").read_text())
    categories = {g["category"] for g in truth["groups"]}
    chart = page.text["categories-chart"]
    assert "unknown" not in chart and all(c in chart for c in categories)
    html = sample_report.read_text()
    assert html.count('class="card"') == ReportConfig().gallery_groups
    assert "no preview" not in html  # every grouped image of a real extract has a thumbnail
    for src in page.images:
        assert (sample_report.parent / src).is_file()
