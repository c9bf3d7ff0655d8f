"""Split documents into retrieval chunks: by headings first, then by sentences packed up to a size, with overlap.

Chunks never cut a word: a sentence longer than the limit is split at spaces, and a single "word" longer than the
limit (a URL, a long code list) is kept whole, so that chunk may exceed ``max_chars``. Keys are ``{doc_key}#{ordinal}``
and depend only on the text and the sizes, so re-chunking an unchanged document gives the same keys.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = [
    "Chunk",
    "DocumentParseError",
    "NoTextInDocument",
    "chunk_text",
    "html_to_text",
    "pdf_to_text",
    "section_text",
    "split_sentences",
]


class DocumentParseError(ValueError):
    """A document (PDF, HTML) could not be read; the message says why in words a person can act on."""


class NoTextInDocument(DocumentParseError):
    """A PDF whose pages hold no text, only images: a scan. It needs OCR, which DeepMed does not do."""


# Fewer letters than this in a whole PDF: its pages are images (a scan), perhaps with a stray page number.
MIN_PDF_LETTERS = 20


@dataclass(frozen=True)
class Chunk:
    key: str
    text: str
    title: str
    source: str
    code: str | None
    ordinal: int
    heading: str | None
    metadata: dict = field(default_factory=dict, compare=False)

    @property
    def search_text(self) -> str:
        """The text to embed and index: the body prefixed with its title and heading.

        A chunk from the middle of a document often never names what it is about ("It is caused by..."), so the
        title and heading travel with it into the embedding and the lexical index. Display ``text`` to people.
        """
        context = self.title if not self.heading or self.heading == self.title else f"{self.title} — {self.heading}"
        return f"{context}\n{self.text}" if context else self.text

    @property
    def title_text(self) -> str:
        """The title field for lexical search: title and heading only. Matching a question against names alone
        lifts the term itself ("Scoliosis") above the many longer chunks that merely mention it ("Compensatory
        scoliosis"), which body BM25 and dense search both tend to prefer."""
        return f"{self.title} {self.heading}" if self.heading and self.heading != self.title else self.title


_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# A sentence ends at . ! ? (optionally followed by a closing quote or bracket) and whitespace. Abbreviations such as
# "e.g." split too early now and then; that only moves a chunk boundary, never loses text.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")
_BLANK_LINES = re.compile(r"\n\s*\n")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences and list items of ``text``, whitespace-normalised, in order; empty ones dropped."""
    sentences: list[str] = []
    for paragraph in _BLANK_LINES.split(text):
        # Each list item and each line of a definition list is a unit of its own, even without a full stop.
        lines = paragraph.split("\n")
        units: list[str] = []
        for line in lines:
            if _LIST_ITEM.match(line) or not units:
                units.append(line)
            else:
                units[-1] = f"{units[-1]} {line}"
        for unit in units:
            normalised = " ".join(unit.split())
            if not normalised:
                continue
            sentences.extend(part for part in _SENTENCE_END.split(normalised) if part.strip())
    return [" ".join(sentence.split()) for sentence in sentences]


def _split_long_sentence(sentence: str, max_chars: int) -> list[str]:
    """Pieces of ``sentence`` of at most ``max_chars`` cut at spaces (a longer single word stays whole)."""
    pieces: list[str] = []
    current = ""
    for word in sentence.split(" "):
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= max_chars or not current:
            current = candidate
        else:
            pieces.append(current)
            current = word
    if current:
        pieces.append(current)
    return pieces


def _sections(text: str, fmt: str) -> list[tuple[str | None, str]]:
    """(heading, body) pairs; text before the first heading has heading None."""
    if fmt == "text":
        return [(None, text)]
    sections: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in text.splitlines():
        match = _MARKDOWN_HEADING.match(line)
        if match:
            sections.append((match.group(2).strip(), []))
        else:
            sections[-1][1].append(line)
    return [(heading, "\n".join(lines)) for heading, lines in sections if heading or "\n".join(lines).strip()]


def section_text(text: str, *, fmt: str, index: int) -> str:
    """The body of section ``index`` of a document as chunk_text numbers them (``Chunk.metadata["section"]``), with
    its line breaks: how-to answers read its list items whole from it. Empty when there is no such section."""
    sections = _sections(text, "markdown" if fmt == "markdown" else "text")
    return sections[index][1].strip() if 0 <= index < len(sections) else ""


def _pack(sentences: list[str], max_chars: int, overlap_chars: int) -> list[str]:
    """Greedy packing of sentences into chunks; each new chunk repeats the previous chunk's last sentences that fit
    in ``overlap_chars``, so an answer spanning a boundary is still whole in one of them."""
    units: list[str] = []
    for sentence in sentences:
        units.extend(_split_long_sentence(sentence, max_chars) if len(sentence) > max_chars else [sentence])

    chunks: list[str] = []
    current: list[str] = []
    fresh = 0  # sentences in `current` not already emitted in the previous chunk
    for unit in units:
        length = sum(len(part) + 1 for part in current) + len(unit)
        if current and length > max_chars:
            if fresh:
                chunks.append(" ".join(current))
            overlap: list[str] = []
            for part in reversed(current):
                if sum(len(p) + 1 for p in overlap) + len(part) > overlap_chars:
                    break
                overlap.insert(0, part)
            # The overlap must leave room for the new sentence, or the chunk would exceed the limit or never advance.
            while overlap and sum(len(p) + 1 for p in overlap) + len(unit) > max_chars:
                overlap.pop(0)
            current = overlap
            fresh = 0
        current.append(unit)
        fresh += 1
    if current and fresh:
        chunks.append(" ".join(current))
    return chunks


def chunk_text(
    text: str,
    *,
    title: str,
    source: str,
    code: str | None = None,
    doc_key: str,
    max_chars: int = 800,
    overlap_chars: int = 120,
    fmt: str = "markdown",
    metadata: dict | None = None,
) -> list[Chunk]:
    """Chunks of ``text`` split by headings (``fmt="markdown"``), then sentences packed up to ``max_chars``."""
    if fmt not in {"markdown", "text"}:
        raise ValueError(f"fmt must be 'markdown' or 'text', got {fmt!r}")
    if max_chars < 20:
        raise ValueError("max_chars must be at least 20")
    if not 0 <= overlap_chars < max_chars:
        raise ValueError("overlap_chars must be at least 0 and smaller than max_chars")
    chunks: list[Chunk] = []
    for section_index, (heading, body) in enumerate(_sections(text, fmt)):
        for piece in _pack(split_sentences(body), max_chars, overlap_chars):
            ordinal = len(chunks)
            chunks.append(
                Chunk(
                    key=f"{doc_key}#{ordinal}",
                    text=piece,
                    title=title,
                    source=source,
                    code=code,
                    ordinal=ordinal,
                    heading=heading,
                    metadata={**(metadata or {}), "doc_key": doc_key, "section": section_index},
                )
            )
    return chunks


_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure", "footer",
    "form", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "th", "thead",
    "tr", "ul",
}  # fmt: skip
_SKIPPED_TAGS = {"script", "style", "template", "noscript", "svg", "head"}


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        # Heading text is collected apart so that "## " and the words land on one line however the HTML wraps.
        self.heading_level = 0
        self.heading_words: list[str] = []
        # One entry per open list: the next item number of an <ol>, None for a <ul>. Numbered steps stay numbered.
        self.lists: list[int | None] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _SKIPPED_TAGS:
            self.skip_depth += 1
        elif self.skip_depth:
            return
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            self.heading_level = int(tag[1])
            self.heading_words = []
        elif tag == "li":
            if self.lists and self.lists[-1] is not None:
                self.parts.append(f"\n{self.lists[-1]}. ")
                self.lists[-1] += 1
            else:
                self.parts.append("\n- ")
        elif tag == "dd":
            # A definition continues its term's line ("Outcome (target): The column to predict."), so that the
            # term and its meaning stay in one sentence unit and never land in different chunks.
            self.parts.append(" ")
        elif tag in {"p", "dl", "ul", "ol", "table", "section", "article", "pre", "blockquote"}:
            if tag in {"ol", "ul"}:
                self.lists.append(1 if tag == "ol" else None)
            self.parts.append("\n\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs) -> None:
        if tag in {"br", "hr"} and not self.skip_depth:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif self.skip_depth:
            return
        elif tag in {"h1", "h2", "h3", "h4", "h5", "h6"} and self.heading_level:
            heading = " ".join(" ".join(self.heading_words).split())
            if heading:
                self.parts.append(f"\n\n{'#' * self.heading_level} {heading}\n\n")
            self.heading_level = 0
        elif tag in {"p", "dl", "ul", "ol", "table", "pre", "blockquote"}:
            if tag in {"ol", "ul"} and self.lists:
                self.lists.pop()
            self.parts.append("\n\n")
        elif tag == "dt":
            self.parts.append(":")
        elif tag in {"dd", "li", "tr", "div"}:
            self.parts.append("\n")
        elif tag in {"td", "th"}:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.heading_level:
            self.heading_words.append(data)
        else:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Readable text of an HTML document: headings as Markdown ``#`` lines, lists as ``- `` items
    (``1. ``, ``2. `` in numbered lists), no scripts/styles."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def pdf_to_text(data: bytes) -> str:
    """Text of every page of a PDF (pypdf), pages separated by blank lines. Raises DocumentParseError, and
    NoTextInDocument for a scan (pages of images without text)."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentParseError("The PDF is password-protected: upload an unprotected copy.")
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
    except DocumentParseError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentParseError(f"The file could not be read as a PDF ({exc}).") from exc
    text = "\n\n".join(page for page in pages if page)
    if sum(character.isalpha() for character in text) < MIN_PDF_LETTERS:
        raise NoTextInDocument(
            "The PDF contains no text, only images: it looks like a scan. DeepMed cannot read scans; upload a PDF "
            "with selectable text, or the text itself (Markdown or plain text)."
        )
    return text
