"""The model folder: a saved model loads and scores the same; crafted or altered files are refused
without running any of their code."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from classifier.config import ClassifyConfig
from classifier.encoders import EncoderId
from classifier.features import feature_names
from classifier.model_io import CARD_FILE, MODEL_FILE, ModelFileError, load_model, save_model
from classifier.regime import coherence_model
from classifier.train import calibrated
from manifests.ledger import file_sha256

ENCODER = EncoderId(name="test-encoder", sha256="0" * 64, dim=4)


class Exploit:
    """Touches a marker file when built from its state, as a malicious payload would run code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).touch()
        self.__dict__.update(state)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def fitted(name: str):
    """A candidate, calibrated as in the selection regime, or "small": the bare small-regime model."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, len(feature_names(ENCODER.dim))))
    y = (X[:, 0] + X[:, -1] + 0.3 * rng.normal(size=60) > 0).astype(int)
    sources = np.array([f"s{i // 2}" for i in range(60)], dtype=object)
    cfg = ClassifyConfig(hgb_max_iter=10)
    if name == "small":
        return coherence_model(ENCODER.dim, cfg.logreg_c).fit(X, y), X
    return calibrated(name, cfg, ENCODER.dim, y, sources).fit(X, y), X


def save(folder: Path, model) -> None:
    fields = {
        "estimator": "logreg",
        "features": [f"f{i}" for i in range(6)],
        "encoder": ENCODER,
        "threshold": 0.5,
        "threshold_rule": "best_f1",
        "sklearn_version": "test",
    }
    save_model(folder, model, fields)


def replace_model_file(folder: Path, data: bytes) -> None:
    """What an attacker controlling the folder can do: swap the file and fix the card's hash."""
    (folder / MODEL_FILE).write_bytes(data)
    card = json.loads((folder / CARD_FILE).read_text())
    card["sha256"] = file_sha256(folder / MODEL_FILE)
    (folder / CARD_FILE).write_text(json.dumps(card))


@pytest.mark.parametrize("name", ["logreg", "hgb", "coherence", "small"])
def test_saved_model_loads_and_scores_the_same(tmp_path, name):
    model, X = fitted(name)
    save(tmp_path, model)
    loaded = load_model(tmp_path)
    np.testing.assert_allclose(loaded.score(X), model.predict_proba(X)[:, 1], rtol=1e-6)
    assert loaded.card.encoder == ENCODER


def test_a_pickle_file_is_refused_without_being_run(tmp_path):
    save(tmp_path, fitted("logreg")[0])
    marker = tmp_path / "pwned"
    replace_model_file(tmp_path, pickle.dumps(Exploit(str(marker))))
    with pytest.raises(ModelFileError, match="not a skops model file"):
        load_model(tmp_path)
    assert not marker.exists()


def test_a_skops_file_with_a_foreign_type_is_refused_without_being_built(tmp_path):
    model, _ = fitted("logreg")
    marker = tmp_path / "pwned"
    model.calibrated_classifiers_[0].payload = Exploit.__new__(Exploit)
    model.calibrated_classifiers_[0].payload.__dict__["marker"] = str(marker)
    save(tmp_path, model)
    with pytest.raises(ModelFileError, match=r"not allowed: .*Exploit"):
        load_model(tmp_path)
    assert not marker.exists()
    # The same file through skops' own loader, trusting everything, does run the payload:
    # the refusal above is what kept it from running.
    sio.load(tmp_path / MODEL_FILE, trusted=sio.get_untrusted_types(file=tmp_path / MODEL_FILE))
    assert marker.exists()


def test_an_altered_model_file_is_refused(tmp_path):
    save(tmp_path, fitted("logreg")[0])
    data = bytearray((tmp_path / MODEL_FILE).read_bytes())
    data[-30] ^= 0xFF
    (tmp_path / MODEL_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="altered"):
        load_model(tmp_path)


def test_missing_model_says_what_to_run(tmp_path):
    with pytest.raises(ModelFileError, match="gdt classify train"):
        load_model(tmp_path)
