"""The filter stage (``gdt classify filter``): every candidate group -> ``classify/scores`` and ``drops``.

One part per ``extract/groups`` part file. Each group's features are scored by the trained model
(calibrated P(good)); every group gets a score row, and those under the threshold also get a
``low_score`` drop row, so a new threshold never needs new features. A group with an image that has no
vector gets a ``missing_embedding`` drop. The model's hash and the embeddings' encoder are inputs of the
stage, and a model trained on another encoder's vectors is refused before any part runs.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, ClassVar

import pyarrow as pa

from classifier.config import ClassifyConfig
from classifier.data import GroupBatch, embeddings_encoder, group_views
from classifier.encoders import EncoderMismatchError
from classifier.features import feature_matrix, feature_names
from classifier.model_io import GroupClassifier, ModelCard, ModelFileError, load_model, read_card
from classifier.train import model_dir
from manifests.drops import DropKind, DropReason, drop_row
from manifests.ledger import InputRef, StageManifest
from manifests.schemas import DROPS, SCORES
from manifests.storage import AnyPath, as_path, read_parquet
from manifests.tables import part_files
from pipeline.errors import UserError
from pipeline.stage import Part, Stage


@dataclass(frozen=True)
class FilterPart:
    run: str
    groups_path: str  # an extract/groups part file


@dataclass
class FilterInputs:
    run: AnyPath
    batch: GroupBatch
    dim: int


@functools.lru_cache(maxsize=2)
def _cached_model(folder: str, sha256: str) -> GroupClassifier:
    """One load per process and model version (the sha256 in the key makes a retrained model reload)."""
    return load_model(folder)


def score_batch(batch: GroupBatch, model: GroupClassifier, threshold: float, dim: int) -> dict[str, pa.Table]:
    scores = model.score(feature_matrix(batch.views, dim))
    drops = [
        drop_row(g, DropKind.GROUP, DropReason.MISSING_EMBEDDING, f"no vector for {', '.join(ids)}"[:300])
        for g, ids in batch.missing.items()
    ]
    drops += [
        drop_row(g, DropKind.GROUP, DropReason.LOW_SCORE, f"score={s:.4f} threshold={threshold:.4f}")
        for g, s in zip(batch.ids, scores.tolist(), strict=True)
        if s < threshold
    ]
    score_table = pa.table(
        {
            "group_id": pa.array(batch.ids, pa.string()),
            "score": pa.array(scores, pa.float32()),
            "model": pa.array([model.card.model_hash] * len(batch.ids), pa.string()),
        },
        schema=SCORES,
    )
    return {"scores": score_table, "drops": pa.Table.from_pylist(drops, schema=DROPS)}


class FilterStage(Stage):
    name = "classify"
    Config = ClassifyConfig
    outputs: ClassVar[dict[str, pa.Schema]] = {"scores": SCORES, "drops": DROPS}
    upstream = ("extract", "embed")
    keeps = ("model",)  # written by `gdt classify train`: clearing stale scores must not remove it

    def _checked_card(self, run: AnyPath) -> ModelCard:
        """The model card, after checking it fits the run's vectors and this version's features."""
        encoder = embeddings_encoder(run)
        try:
            card = read_card(model_dir(run))
            card.check_inputs(encoder, feature_names(encoder.dim), f"the vectors in {run}/embed/embeddings")
        except (EncoderMismatchError, ModelFileError) as err:
            raise UserError(str(err)) from err
        return card

    def input_refs(self, cfg: ClassifyConfig, run: AnyPath) -> list[InputRef]:
        card = self._checked_card(run)
        return [*super().input_refs(cfg, run), InputRef(path="classify/model", hash=card.sha256)]

    def plan(self, cfg: ClassifyConfig, run: AnyPath) -> list[Part]:
        files = part_files(run, "extract", "groups")
        return [Part(i, FilterPart(run=str(run), groups_path=str(p))) for i, p in enumerate(files)]

    def load(self, cfg: ClassifyConfig, run: AnyPath, part: Part) -> FilterInputs:
        spec: FilterPart = part.payload
        run = as_path(spec.run)
        groups = read_parquet(spec.groups_path, columns=["group_id", "image_ids"])
        dim = embeddings_encoder(run).dim
        return FilterInputs(run=run, batch=group_views(run, groups, dim), dim=dim)

    def count_in(self, inputs: FilterInputs) -> dict[str, int]:
        return {"groups": len(inputs.batch.ids) + len(inputs.batch.missing)}

    def run(self, cfg: ClassifyConfig, inputs: FilterInputs, state: Any) -> dict[str, pa.Table]:
        folder = model_dir(inputs.run)
        model = _cached_model(str(folder), read_card(folder).sha256)
        threshold = model.card.threshold if cfg.threshold is None else cfg.threshold
        return score_batch(inputs.batch, model, threshold, inputs.dim)

    def finalize(self, cfg: ClassifyConfig, run: AnyPath) -> dict[str, Any]:
        card = read_card(model_dir(run))
        return {
            "model": card.model_hash,
            "estimator": card.estimator,
            "threshold": card.threshold if cfg.threshold is None else cfg.threshold,
            "encoder": card.encoder.model_dump(),
        }

    def summary_lines(self, manifest: StageManifest) -> list[str]:
        extra = manifest.extra
        if not extra:
            return []
        kept = manifest.counts_out.get("scores", 0) - manifest.dropped.get("low_score", 0)
        return [
            f"model: {extra['estimator']} {extra['model']} on {extra['encoder']['name']}",
            f"threshold: {extra['threshold']:.3f}, {kept:,} groups at or above it",
        ]
