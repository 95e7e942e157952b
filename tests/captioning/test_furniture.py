"""Page furniture: sentences a site repeats on many pages are removed; a page's own sentences stay."""

from __future__ import annotations

from captioning.furniture import repeated_sentences, site_of, strip
from tests.captioning.runs import build_run

FOOTER = "Cookies on this site only remember your language."


def test_sentences_repeated_across_a_sites_documents_are_furniture(tmp_path):
    specs = [{"id": f"d{i}", "n": 2, "doc": f"Page {i} shows the bay at dusk. {FOOTER}"} for i in range(5)]
    specs.append({"id": "twice", "n": 2, "doc": "A rare sentence. Only twice."})
    specs.append({"id": "twice2", "n": 2, "doc": "A rare sentence. Once more."})
    run = build_run(tmp_path / "run", specs)
    furniture = repeated_sentences(run)
    site = site_of("https://example.org/d0")
    assert (
        strip(f"Page 0 shows the bay at dusk. {FOOTER}", site, furniture) == "Page 0 shows the bay at dusk."
    )
    assert strip("A rare sentence.", site, furniture) == "A rare sentence."  # 2 documents: not furniture
    assert strip(FOOTER, "other.example", furniture) == FOOTER  # furniture belongs to its own site
