"""The embed stage: ``extract/images`` -> ``embed/embeddings`` (float16, L2-normalised) and ``embed/drops``.

One part per images part file. Only images used by some candidate group are embedded: ``plan`` builds
a sorted array of the 64-bit prefixes of every grouped image id (8 bytes per grouped image, the only
collection-wide index held) and gives each part the rows it must embed. The encoder is loaded once per
worker (``setup``); its id (name, weights sha256, dim) is an input of the stage, so vectors made with
another encoder are cleared rather than mixed, and it is recorded in the manifest.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from classifier.encoders import EncoderConfig, EncoderId, ImageEncoder, build_encoder
from classifier.encoders.base import resolve_device
from manifests.config import StageConfig
from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import InputRef, StageManifest
from manifests.schemas import DROPS, embeddings_schema
from manifests.storage import read_parquet
from manifests.tables import iter_batches, part_files
from pipeline.errors import UserError
from pipeline.stage import Part, Stage

# Encoder fields that change speed, not the vectors' meaning (fp16 vs fp32 differ by rounding only).
_RUNTIME_ENCODER_FIELDS = {"device", "precision", "batch_size", "cache_dir", "threads"}


class EmbedConfig(StageConfig):
    encoder: EncoderConfig = EncoderConfig()

    def output_hash(self) -> str:
        """Hash of what decides the vectors: the encoder's identity, not its device or batch size."""
        data = self.model_dump(mode="json", exclude={"encoder": _RUNTIME_ENCODER_FIELDS})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class EmbedPart:
    path: str  # an extract/images part file
    rows: list[int]  # rows of that file whose image is used by some group


def id_keys(image_ids: list[str]) -> np.ndarray:
    """The first 64 bits of each sha256-hex image id, as uint64 (collisions only cost an extra embed)."""
    return np.array([int(i[:16], 16) for i in image_ids], dtype=np.uint64)


def grouped_image_keys(run: Path) -> np.ndarray:
    """Sorted unique ``id_keys`` of every image some candidate group uses, read group part by part."""
    chunks = [np.zeros(0, dtype=np.uint64)]
    for batch in iter_batches(run, "extract", "groups", columns=["image_ids"]):
        chunks.append(np.unique(id_keys(batch.column("image_ids").flatten().to_pylist())))
    return np.unique(np.concatenate(chunks))


@functools.lru_cache(maxsize=2)
def load_encoder(cfg: EncoderConfig) -> ImageEncoder:
    """One loaded encoder per process and config (the local executor reuses the driver's)."""
    return build_encoder(cfg)


def probe_encoder(cfg: EncoderConfig) -> EncoderId:
    """The id of ``cfg``'s encoder, for the driver. A GPU encoder is probed on a CPU copy that is freed
    at once, so the driver never holds GPU memory the workers need."""
    device, _ = resolve_device(cfg)
    if device.type == "cpu":
        return load_encoder(cfg).id
    return build_encoder(cfg.model_copy(update={"device": "cpu", "precision": "fp32"})).id


def decode_rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def embed_images(encoder: ImageEncoder, image_ids: list[str], blobs: list[bytes]) -> dict[str, pa.Table]:
    """Decode and embed one part's images a batch at a time; an undecodable image becomes a drop row."""
    kept_ids, vectors, drops = [], [], []
    batch_size = encoder.cfg.batch_size
    for start in range(0, len(image_ids), batch_size):
        images, ids = [], []
        chunk = slice(start, start + batch_size)
        for image_id, data in zip(image_ids[chunk], blobs[chunk], strict=True):
            try:
                images.append(decode_rgb(data))
                ids.append(image_id)
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                drops.append(drop_row(image_id, DropKind.IMAGE, DropReason.DECODE_ERROR, str(err)[:300]))
        if images:
            vectors.append(encoder.encode(images))
            kept_ids.extend(ids)
    dim = encoder.id.dim
    flat = np.concatenate(vectors).astype(np.float16).reshape(-1) if vectors else np.zeros(0, np.float16)
    embeddings = pa.table(
        {"image_id": pa.array(kept_ids, pa.string()), "vector": pa.FixedSizeListArray.from_arrays(flat, dim)},
        schema=embeddings_schema(dim),
    )
    return {"embeddings": embeddings, "drops": pa.Table.from_pylist(drops, schema=DROPS)}


class EmbedStage(Stage):
    name = "embed"
    Config = EmbedConfig
    upstream = ("extract",)
    uses_actors = True

    def __init__(self) -> None:
        self.encoder_id: EncoderId | None = None

    @property
    def outputs(self) -> dict[str, pa.Schema]:  # type: ignore[override]
        if self.encoder_id is None:
            raise RuntimeError("the embed stage's outputs are known once its encoder is loaded")
        return {"embeddings": embeddings_schema(self.encoder_id.dim), "drops": DROPS}

    def input_refs(self, cfg: EmbedConfig, run: Path) -> list[InputRef]:
        try:
            self.encoder_id = probe_encoder(cfg.encoder)
        except (ValueError, RuntimeError, FileNotFoundError) as err:
            raise UserError(f"cannot load the image encoder: {err}") from err
        encoder = InputRef(path=f"encoder:{self.encoder_id.name}", hash=self.encoder_id.sha256)
        return [*super().input_refs(cfg, run), encoder]

    def plan(self, cfg: EmbedConfig, run: Path) -> list[Part]:
        grouped = grouped_image_keys(run)
        parts = []
        for index, path in enumerate(part_files(run, "extract", "images")):
            keys = id_keys(read_parquet(path, columns=["image_id"]).column("image_id").to_pylist())
            rows = np.flatnonzero(np.isin(keys, grouped)).tolist()
            parts.append(Part(index, EmbedPart(path=str(path), rows=rows)))
        return parts

    def load(self, cfg: EmbedConfig, run: Path, part: Part) -> pa.Table:
        spec: EmbedPart = part.payload
        table = read_parquet(spec.path, columns=["image_id", "bytes"])
        return table.take(pa.array(spec.rows, pa.int64()))

    def setup(self, cfg: EmbedConfig) -> ImageEncoder:
        return load_encoder(cfg.encoder)

    def count_in(self, inputs: pa.Table) -> dict[str, int]:
        return {"images": inputs.num_rows}

    def run(self, cfg: EmbedConfig, inputs: pa.Table, state: ImageEncoder) -> dict[str, pa.Table]:
        if self.encoder_id is not None and state.id != self.encoder_id:
            raise RuntimeError(
                f"worker loaded {state.id.describe()}, the driver {self.encoder_id.describe()}"
            )
        blobs = inputs.column("bytes").to_pylist()
        return embed_images(state, inputs.column("image_id").to_pylist(), blobs)

    def finalize(self, cfg: EmbedConfig, run: Path) -> dict[str, Any]:
        assert self.encoder_id is not None
        return {"encoder": self.encoder_id.model_dump()}

    def summary_lines(self, manifest: StageManifest) -> list[str]:
        encoder = manifest.extra.get("encoder")
        return [f"encoder: {EncoderId.model_validate(encoder).describe()}"] if encoder else []
