"""Requests carry every image in order (resized data URIs) and the context; replies are validated strictly."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from captioning.backends.base import GroupRequest, ImageContext
from captioning.images import to_data_uri
from captioning.prompt import (
    InvalidReply,
    build_messages,
    format_context,
    parse_reply,
    response_format,
    squash,
)
from captioning.templates import load_templates
from tests.captioning.runs import photo_png


def _decode(uri: str) -> Image.Image:
    header, data = uri.split(",", 1)
    assert header.startswith("data:image/") and header.endswith(";base64")
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_data_uri_is_resized_to_max_side_and_keeps_aspect():
    img = Image.new("RGB", (400, 100), (10, 200, 30))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    out = _decode(to_data_uri(buf.getvalue(), max_side=64))
    assert out.size == (64, 16)
    assert out.format == "JPEG"
    small = _decode(to_data_uri(buf.getvalue(), max_side=1000))
    assert small.size == (400, 100)  # never upscaled


def test_transparent_images_stay_png():
    buf = io.BytesIO()
    Image.new("RGBA", (20, 20), (0, 0, 0, 0)).save(buf, format="PNG")
    assert to_data_uri(buf.getvalue(), 64).startswith("data:image/png;base64,")


def test_messages_hold_images_in_order_with_context():
    template = load_templates()["generic"]
    photos = [photo_png(name, side=96) for name in ("astronaut", "coffee", "camera")]
    context = (ImageContext(alt="first <b>alt</b>"), ImageContext(text_after="after two"), ImageContext())
    messages = build_messages(
        GroupRequest("g", tuple(photos), context, "The document.", template), max_side=32
    )
    assert messages[0] == {"role": "system", "content": template.system.strip()}
    parts = messages[1]["content"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(images) == 3
    for uri, original in zip(images, photos, strict=True):
        decoded = _decode(uri).convert("RGB")
        assert decoded.size == (32, 32)
        # same picture, in the same place: compare against the original downscaled the same way
        expected = Image.open(io.BytesIO(original)).convert("RGB").resize((32, 32))
        diff = sum(abs(a - b) for a, b in zip(decoded.tobytes(), expected.tobytes(), strict=True))
        assert diff / len(expected.tobytes()) < 12
    labels = [p["text"] for p in parts if p["type"] == "text" and p["text"].startswith("Image ")]
    assert labels[:3] == ["Image 1:", "Image 2:", "Image 3:"]
    text = " ".join(p["text"] for p in parts if p["type"] == "text")
    assert "alt: first <b>alt</b>" in text and "after: after two" in text and "Image 3: (no text)" in text
    assert "The document." in text


def test_response_format_is_a_json_schema_for_n_captions():
    fmt = response_format(load_templates()["generic"], 3)
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["captions"]["maxItems"] == 3


def test_context_is_bounded():
    line = format_context([ImageContext(alt="word " * 500)])
    assert len(line) < 300
    assert squash("a  b\n\nc", 10) == "a b c"
    assert squash("alpha beta gamma", 11) == "alpha beta"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "empty reply"),
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"captions": "x", "group_caption": "g"}', "list of string captions"),
        ('{"captions": ["one cat"], "group_caption": "two cats"}', "1 captions for 2 images"),
        ('{"captions": ["one cat", "  "], "group_caption": "cats"}', "caption 2 is empty"),
        ('{"captions": ["one cat", "two cats"]}', "group_caption"),
        ('{"captions": ["one cat", "' + "x" * 400 + '"], "group_caption": "cats"}', "caption 2 has 400"),
        ('{"captions": ["one cat", "ab"], "group_caption": "cats"}', "caption 2 has 2 characters"),
    ],
)
def test_invalid_replies_say_why(content, message):
    with pytest.raises(InvalidReply, match=message):
        parse_reply(content, 2, load_templates()["generic"])


def test_valid_reply_is_cleaned_and_keeps_extra_fields():
    reply = json.dumps(
        {"font_name": " DejaVu ", "captions": [" A  in DejaVu", "B in\nDejaVu"], "group_caption": "DejaVu"}
    )
    captions, group, fields = parse_reply(reply, 2, load_templates()["font"])
    assert captions == ["A in DejaVu", "B in DejaVu"]
    assert group == "DejaVu"
    assert fields == {"font_name": "DejaVu"}
