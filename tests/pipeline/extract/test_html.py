from pipeline.extract.document import ImageRef
from pipeline.extract.html import parse_html


def refs(items):
    return [i.ref for i in items if isinstance(i, ImageRef)]


def test_images_and_text_come_out_in_source_order_with_canonical_url():
    canonical, items = parse_html(
        '<html><head><link rel="canonical" href="https://ex.org/p"><title>T</title>'
        "<style>p{}</style></head><body><p>One <b>two</b></p><img src=a.jpg alt='A'>"
        "<script>var x = '<img src=evil.jpg>';</script><p>three</p><img src=b.png></body></html>"
    )
    assert canonical == "https://ex.org/p"
    assert items == ["One two", ImageRef("a.jpg", "A"), "three", ImageRef("b.png", None)]


def test_lazy_loading_srcset_and_picture_resolve_to_one_reference_each():
    _, items = parse_html(
        '<img data-src="lazy.jpg" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">'
        '<picture><source srcset="p-300.jpg 300w, p-900.jpg 900w"><img src="p.jpg"></picture>'
        '<picture><source srcset="q-1x.jpg 1x, q-2x.jpg 2x"><img alt="no src"></picture>'
        '<img srcset="s-100.jpg 100w, s-800.jpg 800w">'
        '<img src="plain.jpg" srcset="plain-2x.jpg 2x">'
    )
    assert refs(items) == ["lazy.jpg", "p.jpg", "q-2x.jpg", "s-800.jpg", "plain.jpg"]


def test_invalid_utf8_is_replaced_not_fatal():
    raw = b"<p>caf\xe9 \xff\xfe</p><img src='x.jpg'>"
    _, items = parse_html(raw.decode("utf-8", errors="replace"))
    assert refs(items) == ["x.jpg"]
    assert "caf" in items[0]


def test_an_img_without_any_reference_is_kept_as_an_empty_reference():
    _, items = parse_html("<img alt='nothing'>")
    assert items == [ImageRef("", "nothing")]
