"""Encoders: the offline EfficientNet-Lite0 loads its real weights; ids identify weights; no mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_sample_images

from classifier.encoders import EncoderConfig, EncoderMismatchError, build_encoder, require_same_encoder
from classifier.encoders.base import state_dict_sha256
from classifier.encoders.efficientnet import load_efficientnet_lite0

IMAGENET_DAISY, IMAGENET_PALACE, IMAGENET_BELL_COTE = 985, 698, 442


def test_efficientnet_weights_load_strictly_and_recognise_sample_photos():
    model = load_efficientnet_lite0()  # strict=True inside: a wrong remap raises
    encoder = build_encoder(EncoderConfig(threads=1))
    china, flower = (Image.fromarray(a) for a in load_sample_images().images)
    with torch.inference_mode():
        logits = model(torch.stack([encoder.preprocess(china), encoder.preprocess(flower)]))
    assert logits[1].argmax().item() == IMAGENET_DAISY
    assert {IMAGENET_PALACE, IMAGENET_BELL_COTE} <= set(logits[0].topk(5).indices.tolist())


def test_offline_encoder_is_the_default_and_gives_unit_vectors():
    encoder = build_encoder(EncoderConfig(threads=1))
    assert encoder.id.name == "tf_efficientnet_lite0"
    assert encoder.id.dim == 1280
    china, flower = (Image.fromarray(a) for a in load_sample_images().images)
    vectors = encoder.encode([china, flower, china])
    assert vectors.shape == (3, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert vectors[0] @ vectors[1] < 0.95


def test_open_clip_checkpoint_id_follows_the_weights(tiny_clip, other_tiny_clip, tmp_path):
    from classifier.encoders.tiny import write_tiny_clip

    first, other = build_encoder(tiny_clip), build_encoder(other_tiny_clip)
    again = build_encoder(write_tiny_clip(tmp_path, seed=0))  # same weights, another folder
    assert first.id == again.id
    assert first.id.sha256 != other.id.sha256
    assert first.id.dim == 64
    image = Image.new("RGB", (90, 70), (200, 30, 60))
    np.testing.assert_allclose(first.encode([image]), again.encode([image]), atol=1e-6)


def test_open_clip_without_weights_is_refused():
    with pytest.raises(ValueError, match="has no weights"):
        build_encoder(EncoderConfig(kind="open_clip", model="ViT-B-32"))


def test_auto_kind_picks_open_clip_only_when_weights_are_given():
    assert EncoderConfig().resolved_kind() == "efficientnet_lite0"
    assert EncoderConfig(pretrained="laion2b_s34b_b79k").resolved_kind() == "open_clip"
    assert EncoderConfig(model="hf-hub:org/repo").resolved_kind() == "open_clip"


def test_state_dict_hash_changes_with_any_weight():
    layer = torch.nn.Linear(4, 3)
    before = state_dict_sha256(layer)
    with torch.no_grad():
        layer.bias[0] += 1e-3
    assert state_dict_sha256(layer) != before


def test_mixing_two_encoders_is_refused_with_both_named(tiny_clip, other_tiny_clip):
    a, b = build_encoder(tiny_clip).id, build_encoder(other_tiny_clip).id
    require_same_encoder(a, a, "x", "y")
    with pytest.raises(EncoderMismatchError, match="encoder mismatch") as err:
        require_same_encoder(a, b, "the model", "these vectors")
    assert a.sha256[:12] in str(err.value) and b.sha256[:12] in str(err.value)
