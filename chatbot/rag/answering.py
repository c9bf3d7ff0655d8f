"""Answers shaped by the question and by the source they come from, and citations numbered in order of use.

``classify_question`` tells four kinds of question apart with plain patterns (predictable, explainable):

- **how-to** ("How do I turn on two-factor login?"): when a retrieved passage comes from a document with sections (the
  user guide, an attached file), the answer is that section's steps — its list items, whole and in order, or else the
  paragraph that holds the closest sentence — numbered under one lead line that names the section and cites it once.
- **code** ("What is the HPO term for seizures?", "Which code is used for a heart attack?"): when a coded document
  (ICD-10-CM, HPO) was retrieved, the first sentence is "Term (SYSTEM code): definition", and the rest of the answer
  comes from the same document.
- **definition** ("What does the Brier score mean?"): the defining sentence first — a coded term gets the code's
  shape — then the sentences that continue it.
- **other**: the closest sentence first, then the passage's other close sentences; a second document only when its
  best sentence is about as close as the first.

Markers "[n]" point at the chunks as they were given (1-based), as every generator's do. ``cite_in_order`` renumbers
them per document in order of first use, so one document is one source number, the first cited is [1], and
documents no marker points at can be listed apart as "see also" instead of as the answer's sources.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .chunking import split_sentences
from .lexical import tokenize

__all__ = [
    "CODED_SOURCES",
    "AnswerDraft",
    "CitedSources",
    "QuestionKind",
    "answer_first_sentence",
    "cite_in_order",
    "classify_question",
    "compose_answer",
    "defined_term",
    "lead_generated_answer",
    "lead_with_term",
    "named_code_chunks",
    "section_steps",
]

# Documents whose code names a term of a terminology: their answers open with "Term (code): ...".
CODED_SOURCES = ("ICD-10-CM", "HPO")
MAX_STEPS = 10
MIN_SENTENCE_CHARS = 25
# A second document joins an "other" answer only when its best sentence is this close to the best one.
SECOND_SOURCE_MARGIN = 0.06
# Supporting sentences of a code or definition answer must be at least this share as close as the leading one.
SUPPORT_SHARE = 0.6


class QuestionKind(enum.StrEnum):
    HOW_TO = "how_to"
    CODE = "code"
    DEFINITION = "definition"
    OTHER = "other"


_NAMED_CODE = re.compile(r"\bHP:\d{7}\b|\b[A-TV-Z]\d{2}(?:\.[0-9A-Z]{1,4})?\b", re.IGNORECASE)
_ICD_NAMED = re.compile(r"\b[A-TV-Z]\d{2}(?:\.[0-9A-Z]{1,4})?\b")
# Words that can only mean a terminology: checked before the how-to patterns ("How do I find the ICD code for...").
_STRONG_CODE = re.compile(
    r"\b(?:icd(?:-?10)?(?:-?cm)?|hpo|phenotyp\w*|ontology|diagnos\w*\s+codes?|billing\s+codes?|"
    r"(?:medical|clinical|proper|official|technical|doctors?'?s?)\s+(?:word|name|term)s?|terms?\s+for|"
    r"what\s+(?:do|would)\s+(?:doctors|clinicians|you)\s+call)\b",
    re.IGNORECASE,
)
# "code" alone is weaker: "How do I use a backup code?" is a how-to question about the platform.
_WEAK_CODE = re.compile(r"\b(?:codes?|category|categories|classif\w*)\b", re.IGNORECASE)
_HOW_TO = re.compile(
    r"\bhow\s+(?:do|can|could|should|would|does|did)\s+(?:i|we|you|one|someone|people)\b|\bhow\s+to\b|"
    r"\bwhere\s+(?:do|can|should)\s+(?:i|we)\b|\b(?:what|which)\s+(?:are\s+)?(?:the\s+)?steps\b|\bsteps\s+(?:to|for)\b|"
    r"\bis\s+there\s+a\s+way\b|^\s*can\s+(?:i|we)\b|\bwhat\s+(?:do|should|can)\s+(?:i|we)\s+do\b|"
    r"\bwalk\s+me\s+through\b|\bshow\s+me\s+how\b|\bi\s+(?:want|need|would\s+like)\s+to\b",
    re.IGNORECASE,
)
_DEFINITION = re.compile(
    r"^\s*(?:what\s+(?:is|are|was|were)\b|what'?s\b|what\s+does\b.*\b(?:mean|stand\s+for)\b|define\b|"
    r"definition\s+of\b|meaning\s+of\b|explain\b|what\s+do\s+(?:you|they|we)\s+mean\b)",
    re.IGNORECASE,
)


def classify_question(question: str) -> QuestionKind:
    """The kind of question: how-to, code (a term of a terminology), definition, or other."""
    text = " ".join(question.replace("’", "'").split())
    if _NAMED_CODE.search(text) and (_ICD_NAMED.search(text) or "hp:" in text.lower()):
        return QuestionKind.CODE
    if _STRONG_CODE.search(text):
        return QuestionKind.CODE
    if _HOW_TO.search(text):
        return QuestionKind.HOW_TO
    if _WEAK_CODE.search(text):
        return QuestionKind.CODE
    if _DEFINITION.search(text):
        return QuestionKind.DEFINITION
    return QuestionKind.OTHER


def _asked_system(question: str) -> str | None:
    """Which terminology a code question asks for, when it says: HPO for terms and features, ICD-10-CM for codes."""
    lowered = question.lower()
    if re.search(r"\bhp:\d|\bhpo\b|phenotyp|ontology|\bfeatures?\b|\bsigns?\b|\bfindings?\b|\bterms?\b", lowered):
        return "HPO"
    if re.search(r"\bicd|diagnos|billing|\bcodes?\b|categor|classif", lowered) or _ICD_NAMED.search(question):
        return "ICD-10-CM"
    return None


_DEFINED_TERM = re.compile(
    r"^\s*(?:what\s+(?:is|are|was|were)|what'?s|define|definition\s+of|meaning\s+of|explain|what\s+does)\s+"
    r"(?:an?\s+|the\s+)?(.+?)(?:\s+(?:mean|means|stand\s+for|in\s+(?:the\s+)?.+|when\s+.+|as\s+an?\s+.+))?\s*\??\s*$",
    re.IGNORECASE,
)


def defined_term(question: str) -> str | None:
    """The term a definition question asks about ("What does the Brier score mean?" → "Brier score")."""
    match = _DEFINED_TERM.match(" ".join(question.replace("’", "'").split()))
    if not match:
        return None
    term = match.group(1).strip(" ?.!\"'“”")
    return term or None


def _is_coded(chunk) -> bool:
    return bool(chunk.code) and chunk.code.split(" ", 1)[0] in CODED_SOURCES and " " in chunk.code


def _ordinal(chunk) -> int:
    """A chunk's place in its document, from its key ("icd10cm:E11#2" → 2): reading order across chunks."""
    tail = chunk.key.rsplit("#", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _document_of(chunk) -> str:
    return getattr(chunk, "document", "") or chunk.key


def named_code_chunks(question: str, chunks: Sequence) -> list[int]:
    """Positions of the chunks whose code the question names ("What does E11 cover?", "E11.9" naming E11 too);
    empty when it names none that was retrieved."""
    terms = set(tokenize(question))
    return [position for position, chunk in enumerate(chunks) if chunk.code and chunk.code.split()[-1].lower() in terms]


# --- steps of a section -------------------------------------------------------------------------------------------

_LIST_MARKER = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")


def _blocks(section: str) -> list[tuple[str, str]]:
    """(kind, text) of a section's paragraphs and list items, in order; kind is "item" or "para". A definition-list
    entry is a paragraph of its own ("Patient grouping: If a patient has several rows, ...")."""
    blocks: list[tuple[str, str]] = []
    for paragraph in re.split(r"\n\s*\n", section):
        current: list[str] = []
        kind = "para"
        for line in paragraph.split("\n"):
            if _LIST_MARKER.match(line):
                if current:
                    blocks.append((kind, " ".join(" ".join(current).split())))
                current, kind = [_LIST_MARKER.sub("", line, count=1)], "item"
            elif line.strip():
                current.append(line)
        if current:
            blocks.append((kind, " ".join(" ".join(current).split())))
    return [(kind, text) for kind, text in blocks if text]


def section_steps(section: str, *, best: Callable[[list[str]], int] | None = None) -> list[str]:
    """The steps of a section: its list items, whole and in order (with the line that introduces them when it ends
    in a colon, as in "Your password must:"); without a list, the sentences of the paragraph holding the sentence
    ``best`` picks (by default the first one)."""
    blocks = _blocks(section)
    items = [position for position, (kind, _) in enumerate(blocks) if kind == "item"]
    if items:
        steps = [blocks[position][1] for position in items[:MAX_STEPS]]
        before = items[0] - 1
        if before >= 0 and blocks[before][0] == "para" and blocks[before][1].endswith(":"):
            steps[0] = f"{blocks[before][1]} {steps[0]}"
        return steps
    paragraphs = [text for _, text in blocks]
    if not paragraphs:
        return []
    sentences = [split_sentences(paragraph) for paragraph in paragraphs]
    chosen = 0
    if best is not None and len(paragraphs) > 1:
        flat = [(position, sentence) for position, group in enumerate(sentences) for sentence in group]
        chosen = flat[best([sentence for _, sentence in flat])][0] if flat else 0
    return sentences[chosen][:MAX_STEPS]


# --- composing ----------------------------------------------------------------------------------------------------


@dataclass
class AnswerDraft:
    """An answer's text with "[n]" markers pointing at the chunks as given, the numbers used, and its shape."""

    text: str
    citations: list[int]
    shape: str


Scorer = Callable[[str, list[str]], np.ndarray]


def _term_name(chunk) -> str:
    prefix = f"{chunk.code}: "
    return chunk.title[len(prefix) :] if chunk.title.startswith(prefix) else chunk.title


_ICD_BLOCK = re.compile(r"^,\s*in the block ([A-Z0-9.\-]+):\s*(.+?)\.?$")


def lead_with_term(chunk, sentences: Sequence[str]) -> tuple[str, int | None]:
    """("Term (code): definition", position of the sentence it was made from, or None when none starts with the
    term: then the lead is just "Term (code):" and the caller adds a sentence)."""
    prefix = f"{_term_name(chunk)} ({chunk.code})"
    for position, sentence in enumerate(sentences):
        if not sentence.startswith(prefix):
            continue
        rest = sentence[len(prefix) :].strip()
        block = _ICD_BLOCK.match(rest)
        if block:
            body = f"a category in the block {block.group(1)}, {block.group(2)}."
        else:
            body = rest.lstrip(":,;— ").strip()
        return (f"{prefix}: {body}" if body else f"{prefix}."), position
    return f"{prefix}:", None


def _sentences_of(chunk) -> list[str]:
    sentences = [sentence for sentence in split_sentences(chunk.text) if len(sentence) >= MIN_SENTENCE_CHARS]
    return sentences or [" ".join(chunk.text.split())]


def _term_bonus(term: str | None, sentences: Sequence[str]) -> np.ndarray:
    """A lift for sentences that define ``term``: "Brier score: ...", "Cross-validation is ..."."""
    bonus = np.zeros(len(sentences), dtype=np.float32)
    if not term:
        return bonus
    wanted = term.lower()
    for position, sentence in enumerate(sentences):
        lowered = sentence.lower().lstrip("“\"'")
        if lowered.startswith((f"{wanted}:", f"{wanted} (", f"{wanted} is", f"{wanted} are", f"{wanted} means")):
            bonus[position] = 0.15
        elif f"{wanted}:" in lowered:
            bonus[position] = 0.08
    return bonus


def _document_chunks(chunks: Sequence, document: str) -> list[int]:
    return [position for position, chunk in enumerate(chunks) if _document_of(chunk) == document]


def _primary_coded(question: str, chunks: Sequence) -> int | None:
    """The coded chunk a code question is about: one whose code it names, else the best-ranked one of the
    terminology it asks for, else the best-ranked coded one."""
    coded = [position for position, chunk in enumerate(chunks) if _is_coded(chunk)]
    if not coded:
        return None
    named = [position for position in named_code_chunks(question, chunks) if position in coded]
    system = _asked_system(question)
    preferred = [position for position in coded if system and chunks[position].code.startswith(system)]
    return (named or preferred or coded)[0]


def _code_answer(question: str, chunks: Sequence, score: Scorer, max_sentences: int) -> AnswerDraft | None:
    primary = _primary_coded(question, chunks)
    if primary is None:
        return None
    document = _document_of(chunks[primary])
    positions = _document_chunks(chunks, document)
    sentences: list[tuple[int, str]] = []
    for position in sorted(positions, key=lambda p: _ordinal(chunks[p])):
        for sentence in split_sentences(chunks[position].text):
            if sentence not in {text for _, text in sentences}:
                sentences.append((position, sentence))
    texts = [text for _, text in sentences]
    lead, used = lead_with_term(chunks[primary], texts)
    scores = score(question, texts) if texts else np.zeros(0, dtype=np.float32)
    rest = [index for index in range(len(texts)) if index != used and len(texts[index]) >= MIN_SENTENCE_CHARS]
    if used is None and rest:
        best = max(rest, key=lambda index: scores[index])
        lead = f"{lead} {texts[best]}"
        rest.remove(best)
    ranked = sorted(rest, key=lambda index: -scores[index])
    top = float(scores[ranked[0]]) if ranked else 0.0
    support = [index for index in ranked[: max(0, max_sentences - 1)] if scores[index] >= SUPPORT_SHARE * top]
    body = " ".join([lead, *(texts[index] for index in sorted(support))])
    return AnswerDraft(f"{body} [{primary + 1}]", [primary + 1], "code")


def _candidates(chunks: Sequence) -> list[tuple[int, int, str]]:
    """(chunk number, position in chunk, sentence) of every chunk, the same sentence of two chunks once."""
    candidates, seen = [], set()
    for number, chunk in enumerate(chunks, start=1):
        for position, sentence in enumerate(_sentences_of(chunk)):
            if sentence in seen:
                continue
            seen.add(sentence)
            candidates.append((number, position, sentence))
    return candidates


def _ranked(question: str, chunks: Sequence, score: Scorer, term: str | None):
    candidates = _candidates(chunks)
    texts = [sentence for _, _, sentence in candidates]
    scores = score(question, texts) + _term_bonus(term, texts)
    # Retrieval already ranked the chunks: a small prior for better-ranked ones breaks near-ties their way.
    priors = np.array([0.05 / number for number, _, _ in candidates], dtype=np.float32)
    return candidates, scores + priors


def _definition_answer(question: str, chunks: Sequence, score: Scorer, max_sentences: int) -> AnswerDraft:
    term = defined_term(question)
    candidates, scores = _ranked(question, chunks, score, term)
    best = int(np.argmax(scores))
    number, position, sentence = candidates[best]
    document = _document_of(chunks[number - 1])
    # What continues the definition: the sentences right after it in the same chunk, up to the next defined term
    # ("PR AUC: ..."), then the other close sentences of the same document.
    following = [
        index
        for index, (other_number, other_position, _) in enumerate(candidates)
        if other_number == number and other_position > position
    ]
    continuation: list[int] = []
    for index in following:
        if len(continuation) >= max_sentences - 1 or re.match(r"^[^.:;]{1,40}:\s", candidates[index][2]):
            break
        continuation.append(index)
    others: list[int] = []
    same_document = [
        index
        for index, (other_number, _, _) in enumerate(candidates)
        if index != best and index not in continuation and _document_of(chunks[other_number - 1]) == document
    ]
    for index in sorted(same_document, key=lambda index: -scores[index]):
        if len(continuation) + len(others) >= max_sentences - 1 or scores[index] < SUPPORT_SHARE * scores[best]:
            break
        others.append(index)
    # The definition, then what continues it, then other close sentences of the same document in reading order.
    ordered = [best, *continuation, *sorted(others, key=lambda index: (candidates[index][0], candidates[index][1]))]
    text = " ".join(candidates[index][2] for index in ordered)
    return AnswerDraft(f"{text} [{number}]", [number], "definition")


def _other_answer(question: str, chunks: Sequence, score: Scorer, max_sentences: int) -> AnswerDraft:
    candidates, scores = _ranked(question, chunks, score, None)
    order = [int(index) for index in np.argsort(-scores, kind="stable")]
    best = order[0]
    lead_document = _document_of(chunks[candidates[best][0] - 1])
    chosen = [best]
    for index in order[1:]:
        if len(chosen) == max_sentences:
            break
        same = _document_of(chunks[candidates[index][0] - 1]) == lead_document
        close = scores[index] >= scores[best] - SECOND_SOURCE_MARGIN
        if close or (same and scores[index] >= SUPPORT_SHARE * scores[best]):
            chosen.append(index)
    # One paragraph per document, the leading document first; inside it the best sentence first, then reading order.
    groups: dict[str, list[int]] = {}
    for index in chosen:
        groups.setdefault(_document_of(chunks[candidates[index][0] - 1]), []).append(index)
    paragraphs, citations = [], []
    for indexes in groups.values():
        rest = sorted(indexes[1:], key=lambda index: (candidates[index][0], candidates[index][1]))
        numbers = list(dict.fromkeys(candidates[index][0] for index in [indexes[0], *rest]))
        text = " ".join(candidates[index][2] for index in [indexes[0], *rest])
        paragraphs.append(f"{text} " + "".join(f"[{number}]" for number in numbers))
        citations.extend(number for number in numbers if number not in citations)
    return AnswerDraft("\n\n".join(paragraphs), citations, "other")


def _section_label(chunk) -> str:
    heading = (getattr(chunk, "heading", "") or "").strip()
    return f"{chunk.title} — {heading}" if heading and heading != chunk.title else chunk.title


def _how_to_answer(question: str, chunks: Sequence, score: Scorer) -> AnswerDraft | None:
    # The best-ranked passage with a section gives the steps. (Taking the section closest in meaning instead won one
    # tuned lay question and lost "How do I turn on two-factor login?" to the section describing it.)
    for number, chunk in enumerate(chunks, start=1):
        section = getattr(chunk, "section", "") or ""
        if not section.strip() or _is_coded(chunk):
            continue

        def best(sentences: list[str]) -> int:
            return int(np.argmax(score(question, sentences)))

        steps = section_steps(section, best=best)
        if not steps:
            continue
        lines = [f"{_section_label(chunk)} [{number}]:"]
        lines.extend(f"{position}. {step}" for position, step in enumerate(steps, start=1))
        return AnswerDraft("\n".join(lines), [number], "steps")
    return None


def _memoised(question: str, chunks: Sequence, score: Scorer) -> Scorer:
    """``score`` with every sentence of the chunks scored up front in one batch (one encoder call per answer, which
    the sentence cache then serves), and any other sentence (a section's) scored once when first asked for."""
    texts = list(dict.fromkeys(sentence for chunk in chunks for sentence in split_sentences(chunk.text)))
    memo: dict[str, float] = dict(zip(texts, (float(value) for value in score(question, texts)), strict=True))

    def lookup(_question: str, sentences: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(sentence for sentence in sentences if sentence not in memo))
        if missing:
            memo.update(zip(missing, (float(value) for value in score(question, missing)), strict=True))
        return np.array([memo[sentence] for sentence in sentences], dtype=np.float32)

    return lookup


def compose_answer(
    question: str, chunks: Sequence, *, score: Scorer, max_sentences: int = 3, kind: QuestionKind | None = None
) -> AnswerDraft:
    """The extractive answer to ``question`` from ``chunks`` (retrieval order), shaped by the kind of question and
    by what was retrieved. ``score(question, sentences)`` gives each sentence's closeness to the question."""
    kind = kind or classify_question(question)
    score = _memoised(question, chunks, score)
    draft = None
    if kind is QuestionKind.HOW_TO:
        draft = _how_to_answer(question, chunks, score)
    elif kind in (QuestionKind.CODE, QuestionKind.DEFINITION):
        first = chunks[0]
        named = named_code_chunks(question, chunks)
        if kind is QuestionKind.CODE or _is_coded(first) or named:
            draft = _code_answer(question, chunks, score, max_sentences)
        if draft is None:
            draft = _definition_answer(question, chunks, score, max_sentences)
    return draft or _other_answer(question, chunks, score, max_sentences)


def lead_generated_answer(question: str, text: str, chunks: Sequence) -> str:
    """A language model's answer to a code question, opened with "Term (code) [n]:" when its first sentence does
    not name the code: the reader must not have to find the code in the source list."""
    kind = classify_question(question)
    if kind not in (QuestionKind.CODE, QuestionKind.DEFINITION) or not chunks:
        return text
    if kind is QuestionKind.DEFINITION and not (_is_coded(chunks[0]) or named_code_chunks(question, chunks)):
        return text
    primary = _primary_coded(question, chunks)
    if primary is None:
        return text
    chunk = chunks[primary]
    if chunk.code.split()[-1].lower() in answer_first_sentence(text).lower():
        return text
    return f"{_term_name(chunk)} ({chunk.code}) [{primary + 1}]: {text}"


# --- citations ----------------------------------------------------------------------------------------------------

_CITATION_GROUP = re.compile(r"\[(\s*\d+\s*(?:[,;]\s*\d+\s*)*)\]")


@dataclass
class CitedSources:
    """An answer renumbered by document: ``cited[n-1]`` holds the chunk positions (0-based, retrieval order) of
    source [n], the chunks it cites first; ``see_also`` the positions of the first chunk of each document retrieved
    but not cited, in retrieval order."""

    text: str
    cited: list[list[int]]
    see_also: list[int]


def cite_in_order(text: str, chunks: Sequence) -> CitedSources:
    """Renumbers "[n]" markers (chunk numbers) so that each document has one number, in order of first use, and
    drops markers outside 1..len(chunks), repeated numbers in a group ("[1][1]" → "[1]") included."""
    numbers: dict[str, int] = {}
    cited: list[list[int]] = []

    def renumber(match: re.Match) -> str:
        out: list[int] = []
        for raw in re.findall(r"\d+", match.group(1)):
            position = int(raw) - 1
            if not 0 <= position < len(chunks):
                continue
            document = _document_of(chunks[position])
            if document not in numbers:
                numbers[document] = len(numbers) + 1
                cited.append([])
            number = numbers[document]
            if position not in cited[number - 1]:
                cited[number - 1].append(position)
            if number not in out:
                out.append(number)
        return "".join(f"[{number}]" for number in out)

    renumbered = _CITATION_GROUP.sub(renumber, text)
    # Markers made adjacent and equal by the renumbering ("[1] [1]", "[1][1]") say the same thing once.
    renumbered = re.sub(r"(\[\d+\])(?:\s*\1)+", r"\1", renumbered)
    renumbered = re.sub(r"[ \t]+([.,;:])", r"\1", renumbered).strip()
    seen = set(numbers)
    see_also = []
    for position, chunk in enumerate(chunks):
        document = _document_of(chunk)
        if document not in seen:
            seen.add(document)
            see_also.append(position)
    return CitedSources(renumbered, cited, see_also)


def answer_first_sentence(text: str) -> str:
    """The first sentence of an answer as a reader meets it; for a list of steps, the lead line naming the section."""
    sentences = split_sentences(text)
    return sentences[0] if sentences else ""
