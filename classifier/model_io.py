"""The classifier on disk: ``RUN/classify/model/`` holds ``model.skops`` and its card ``model.json``.

The estimator is saved with skops, never pickle. Loading checks the file's sha256 against the card, then
lists the types the file would construct and refuses any outside skops' defaults and ``ALLOWED_TYPES``
(the few sklearn internals our estimators need) before anything is built, so a crafted file cannot
run code. The card names the features and the encoder the model was trained on; scoring checks both.
"""

from __future__ import annotations

import hashlib
import zipfile

import numpy as np
import skops.io as sio
from pydantic import BaseModel, ConfigDict
from sklearn.calibration import CalibratedClassifierCV
from sklearn.pipeline import Pipeline

from classifier.encoders import EncoderId, require_same_encoder
from manifests.ledger import atomic_write_bytes
from manifests.storage import AnyPath, as_path

MODEL_FILE = "model.skops"
CARD_FILE = "model.json"

# Types skops does not trust by default that a calibrated logistic regression or gradient boosting holds.
ALLOWED_TYPES = frozenset(
    {
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)


class ModelFileError(ValueError):
    """A model folder that is missing, altered, or holds something other than our classifier."""


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str = "skops"
    file: str = MODEL_FILE
    sha256: str  # of the model file
    estimator: str  # "logreg" | "hgb" | "coherence"; calibrated, or a plain pipeline in the small regime
    features: list[str]
    encoder: EncoderId
    threshold: float
    threshold_rule: str
    sklearn_version: str

    @property
    def model_hash(self) -> str:
        return self.sha256[:16]

    def check_inputs(self, encoder: EncoderId, features: list[str], vectors_what: str) -> None:
        """Refuse vectors of another encoder, or a feature list this code does not compute."""
        require_same_encoder(self.encoder, encoder, "the classifier model", vectors_what)
        if features != self.features:
            raise ModelFileError(
                f"the model was trained on {len(self.features)} features that differ from the "
                f"{len(features)} this version computes: run `gdt classify train` again"
            )


class GroupClassifier:
    """A loaded model and its card: features in, calibrated P(good group) out."""

    def __init__(self, estimator: CalibratedClassifierCV | Pipeline, card: ModelCard):
        self.estimator, self.card = estimator, card

    def score(self, features: np.ndarray) -> np.ndarray:
        if len(features) == 0:
            return np.zeros(0, dtype=np.float32)
        return self.estimator.predict_proba(features)[:, 1].astype(np.float32)


def save_model(folder: AnyPath, estimator: CalibratedClassifierCV | Pipeline, card_fields: dict) -> ModelCard:
    """Write the model file, then the card naming its hash (the card last: it certifies the file)."""
    folder = as_path(folder)
    written = atomic_write_bytes(folder / MODEL_FILE, sio.dumps(estimator))
    card = ModelCard(sha256=written.sha256, **card_fields)
    atomic_write_bytes(folder / CARD_FILE, card.model_dump_json(indent=2).encode() + b"\n")
    return card


def read_card(folder: AnyPath) -> ModelCard:
    path = as_path(folder) / CARD_FILE
    if not path.exists():
        raise ModelFileError(f"no trained classifier in {folder}: run `gdt classify train` first")
    return ModelCard.model_validate_json(path.read_text())


def load_model(folder: AnyPath) -> GroupClassifier:
    """Load and verify a model folder; nothing outside the allowed types is ever constructed."""
    folder = as_path(folder)
    card = read_card(folder)
    path = folder / card.file
    if card.format != "skops" or path.name != MODEL_FILE or not path.exists():
        raise ModelFileError(f"{folder}: the card must name a {MODEL_FILE} file in skops format")
    data = path.read_bytes()  # read once: the bytes checked are the bytes loaded
    if hashlib.sha256(data).hexdigest() != card.sha256:
        raise ModelFileError(f"{path} does not match the sha256 in {CARD_FILE}: the file was altered")
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise ModelFileError(
            f"{path} is not a skops model file ({err}); pickle files are never loaded"
        ) from err
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise ModelFileError(f"{path} would construct types that are not allowed: {', '.join(refused)}")
    estimator = sio.loads(data, trusted=list(untrusted))
    if not isinstance(estimator, CalibratedClassifierCV | Pipeline):
        raise ModelFileError(f"{path} holds a {type(estimator).__name__}, not a group classifier")
    return GroupClassifier(estimator, card)
