"""The embed stage on a hand-built run: what it embeds, what it drops, its manifest, skip and re-embed."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from classifier.embed import EmbedConfig, EmbedStage
from classifier.encoders import build_encoder
from manifests.ledger import read_manifest, write_parquet_atomic
from manifests.schemas import GROUPS, IMAGES
from manifests.tables import read_table
from pipeline.runner import run_stage
from tests.classifier.conftest import LOCAL
from tests.classifier.runs import image_row, write_extract, write_extract_manifest

CORRUPT = "f" * 64


@pytest.fixture
def run_with_extras(tmp_path: Path) -> Path:
    """The hand-built run plus a third part: an image no group uses, and a group with a corrupt image."""
    run = tmp_path / "run"
    write_extract(run, docs_per_label=3)
    rng = np.random.default_rng(7)
    orphan, a, b = (image_row(rng.integers(0, 255, (40, 50, 3)), f"extra-{i}") for i in range(3))
    corrupt = {**a, "image_id": CORRUPT, "bytes": b"\x89PNG\r\n\x1a\n truncated", "source": "corrupt"}
    images = pa.Table.from_pylist([orphan, a, b, corrupt], schema=IMAGES)
    group = {
        "group_id": "ffffffffffffffff-0-3",
        "doc_id": "ffffffffffffffff",
        "source": "https://example.org/extra.html",
        "image_ids": [a["image_id"], CORRUPT, b["image_id"]],
        "positions": [0, 1, 2],
        "context": [{"alt": None, "text_before": None, "text_after": None}] * 3,
    }
    write_parquet_atomic(images, run / "extract" / "images" / "part-00002.parquet")
    write_parquet_atomic(
        pa.Table.from_pylist([group], schema=GROUPS), run / "extract" / "groups" / "part-00002.parquet"
    )
    write_extract_manifest(run)
    return run


def grouped_ids(run: Path) -> set[str]:
    groups = read_table(run, "extract", "groups", columns=["image_ids"])
    return set(groups.column("image_ids").combine_chunks().flatten().to_pylist())


def test_embeds_every_grouped_image_once_as_unit_float16(run_with_extras, tiny_clip):
    run = run_with_extras
    run_stage(EmbedStage(), EmbedConfig(encoder=tiny_clip), run, LOCAL, quiet=True)

    table = read_table(run, "embed", "embeddings")
    ids = table.column("image_id").to_pylist()
    assert len(ids) == len(set(ids))
    assert set(ids) == grouped_ids(run) - {CORRUPT}  # the orphan image is not embedded
    assert table.schema.field("vector").type.value_type == pa.float16()
    vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=2e-3)

    # Each row holds the vector of its own image.
    encoder = build_encoder(tiny_clip)
    images = read_table(run, "extract", "images", columns=["image_id", "bytes"]).to_pylist()
    blobs = {r["image_id"]: r["bytes"] for r in images}
    expected = encoder.encode([Image.open(io.BytesIO(blobs[i])).convert("RGB") for i in ids[:10]])
    np.testing.assert_allclose(vectors[:10], expected, atol=3e-3)

    drops = read_table(run, "embed", "drops").to_pylist()
    assert [(d["id"], d["kind"], d["reason"]) for d in drops] == [(CORRUPT, "image", "decode_error")]
    manifest = read_manifest(run / "embed")
    assert manifest.extra["encoder"] == encoder.id.model_dump()
    assert manifest.counts_in == {"images": len(ids) + 1}
    assert any(i.path.startswith("encoder:") and i.hash == encoder.id.sha256 for i in manifest.inputs)


def test_rerun_is_skipped_and_another_encoder_replaces_every_vector(embedded_run, tiny_clip, other_tiny_clip):
    run, _ = embedded_run
    again = run_stage(
        EmbedStage(),
        EmbedConfig(encoder=tiny_clip.model_copy(update={"batch_size": 7})),
        run,
        LOCAL,
        quiet=True,
    )
    assert again.skipped  # batch size is not part of what the vectors mean

    before = read_table(run, "embed", "embeddings")
    result = run_stage(EmbedStage(), EmbedConfig(encoder=other_tiny_clip), run, LOCAL, quiet=True)
    assert not result.skipped
    after = read_table(run, "embed", "embeddings")
    assert read_manifest(run / "embed").extra["encoder"] == build_encoder(other_tiny_clip).id.model_dump()
    assert sorted(after.column("image_id").to_pylist()) == sorted(before.column("image_id").to_pylist())
    old = dict(zip(before.column("image_id").to_pylist(), before.column("vector").to_pylist(), strict=True))
    for image_id, vector in zip(
        after.column("image_id").to_pylist(), after.column("vector").to_pylist(), strict=True
    ):
        assert not np.allclose(vector, old[image_id], atol=1e-2)  # no vector of the first encoder is left


def test_missing_extract_is_a_clear_error(tmp_path, tiny_clip):
    from pipeline.errors import UserError

    with pytest.raises(UserError, match="gdt extract"):
        run_stage(EmbedStage(), EmbedConfig(encoder=tiny_clip), tmp_path / "run", LOCAL, quiet=True)


@pytest.mark.integration
def test_ray_actors_give_the_same_vectors_as_one_process(embedded_run, tiny_clip, ray_cluster, tmp_path):
    from manifests.config import RuntimeConfig

    run, _ = embedded_run
    local = read_table(run, "embed", "embeddings").sort_by("image_id")
    result = run_stage(
        EmbedStage(), EmbedConfig(encoder=tiny_clip), run, RuntimeConfig(), force=True, quiet=True
    )
    assert result.parts_run == [0, 1]
    on_ray = read_table(run, "embed", "embeddings").sort_by("image_id")
    assert on_ray.column("image_id").to_pylist() == local.column("image_id").to_pylist()
    np.testing.assert_allclose(
        np.stack(on_ray.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32),
        np.stack(local.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32),
        atol=2e-3,
    )
