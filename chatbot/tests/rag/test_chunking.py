import io

import pytest

from chatbot.rag.chunking import DocumentParseError, chunk_text, html_to_text, pdf_to_text, split_sentences

GUIDE = """Intro line about the platform. It explains things.

# Uploading data

Upload a CSV file from the datasets page. Files up to the size limit are accepted. Columns are detected automatically.

## Cleaning

Missing values can be imputed. Outliers can be clipped. Each change is recorded in a cleaning plan.
"""


def chunks_of(text, **kwargs):
    params = {"title": "Guide", "source": "DeepMed guide", "doc_key": "guide:x"} | kwargs
    return chunk_text(text, **params)


def test_it_splits_markdown_by_headings_and_keeps_the_heading():
    chunks = chunks_of(GUIDE)
    assert [chunk.heading for chunk in chunks] == [None, "Uploading data", "Cleaning"]
    assert chunks[1].text.startswith("Upload a CSV file")
    assert "Outliers can be clipped." in chunks[2].text
    assert all("#" not in chunk.text for chunk in chunks)


def test_text_format_ignores_hash_lines_as_headings():
    chunks = chunks_of("# not a heading. Just text.", fmt="text")
    assert len(chunks) == 1 and chunks[0].heading is None and chunks[0].text.startswith("# not a heading.")


def test_keys_are_stable_and_ordinals_are_consecutive():
    first, second = chunks_of(GUIDE, max_chars=60, overlap_chars=20), chunks_of(GUIDE, max_chars=60, overlap_chars=20)
    assert [chunk.key for chunk in first] == [f"guide:x#{n}" for n in range(len(first))]
    assert first == second
    assert [chunk.ordinal for chunk in first] == list(range(len(first)))


def test_chunks_respect_max_chars_and_overlap_by_whole_sentences():
    sentences = [f"Sentence number {n} talks about topic {n}." for n in range(30)]
    chunks = chunks_of(" ".join(sentences), max_chars=200, overlap_chars=80)
    assert len(chunks) > 3
    assert all(len(chunk.text) <= 200 for chunk in chunks)
    for previous, current in zip(chunks, chunks[1:], strict=False):
        previous_sentences, current_sentences = split_sentences(previous.text), split_sentences(current.text)
        # The next chunk starts with the previous chunk's last whole sentences (up to 80 chars of them).
        start = previous_sentences.index(current_sentences[0])
        overlap = previous_sentences[start:]
        assert current_sentences[: len(overlap)] == overlap
        assert 0 < len(" ".join(overlap)) <= 80
    # Every sentence survives chunking.
    joined = " ".join(chunk.text for chunk in chunks)
    assert all(sentence in joined for sentence in sentences)


def test_without_overlap_no_sentence_is_repeated():
    sentences = [f"Fact {n} is here." for n in range(40)]
    chunks = chunks_of(" ".join(sentences), max_chars=100, overlap_chars=0)
    pieces = [sentence for chunk in chunks for sentence in split_sentences(chunk.text)]
    assert pieces == sentences


def test_it_never_cuts_a_word_even_in_a_sentence_longer_than_the_limit():
    words = [f"word{n:03d}" for n in range(200)]
    long_sentence = " ".join(words) + "."
    chunks = chunks_of(long_sentence, max_chars=100, overlap_chars=0)
    assert len(chunks) > 5
    for chunk in chunks:
        assert len(chunk.text) <= 100
        for token in chunk.text.rstrip(".").split(" "):
            assert token in words
    assert " ".join(chunk.text for chunk in chunks) == long_sentence


def test_a_single_word_longer_than_the_limit_stays_whole():
    url = "https://example.org/" + "a" * 150
    chunks = chunks_of(f"See {url} for details.", max_chars=50, overlap_chars=0)
    assert any(url in chunk.text for chunk in chunks)


def test_search_text_carries_title_and_heading():
    chunk = chunks_of(GUIDE)[2]
    assert chunk.search_text.startswith("Guide — Cleaning\n")
    assert chunk.search_text.endswith(chunk.text)


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="overlap_chars"):
        chunks_of("text", max_chars=100, overlap_chars=100)
    with pytest.raises(ValueError, match="fmt"):
        chunks_of("text", fmt="pdf")


def test_html_to_text_keeps_headings_and_drops_scripts_and_styles():
    html = """<html><head><style>p { color: red }</style></head><body>
      <h2>
        Reading   the report</h2>
      <script>alert("x")</script>
      <p>ROC AUC &amp; calibration.</p>
      <ul><li>One</li><li>Two</li></ul>
      <dl><dt>Folds</dt><dd>Parts of the data.</dd></dl>
    </body></html>"""
    text = html_to_text(html)
    assert "## Reading the report" in text.splitlines()
    assert "alert" not in text and "color" not in text
    assert "ROC AUC & calibration." in text
    assert "- One" in text and "- Two" in text
    assert "Folds: Parts of the data." in " ".join(text.split())
    chunks = chunks_of(text)
    assert chunks[0].heading == "Reading the report"


def _pdf_with_text(text: str) -> bytes:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=200)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    stream = DecodedStreamObject()
    stream.set_data(f"BT /F1 12 Tf 20 100 Td ({text}) Tj ET".encode())
    page[NameObject("/Contents")] = writer._add_object(stream)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def test_pdf_to_text_reads_the_text_of_a_pdf():
    assert "Hypertension is high blood pressure." in pdf_to_text(_pdf_with_text("Hypertension is high blood pressure."))


def test_pdf_to_text_refuses_a_file_that_is_not_a_pdf():
    with pytest.raises(DocumentParseError, match="PDF"):
        pdf_to_text(b"this is not a pdf at all")
