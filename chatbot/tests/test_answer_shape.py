"""Answers shaped by the question and the source: a how-to question gets the guide section's steps (whole, in order,
cited once), a code question names the term and its code in the first sentence, a definition comes first, and
citations are numbered per document in order of use, with the retrieved documents an answer does not use kept apart
as "see also"."""

import re

import pytest

from chatbot.knowledge_sources import guide_documents
from chatbot.rag.answering import cite_in_order, section_steps
from chatbot.rag.chunking import _sections, section_text
from chatbot.rag.generation import RetrievedChunk

from .test_api import ask, start

MARKER = re.compile(r"\[(\d+)\]")


def markers(text: str) -> list[int]:
    return [int(number) for number in MARKER.findall(text)]


def assert_numbered_in_order_of_use(answer: dict) -> None:
    """Every source is cited, each under one number, first uses in order 1, 2, ...; see-also is apart."""
    used = list(dict.fromkeys(markers(answer["answer"])))
    assert used == list(range(1, len(answer["sources"]) + 1)), (answer["answer"], answer["sources"])
    cited = [source["document_id"] for source in answer["sources"]]
    assert len(cited) == len(set(cited)), "one document, one number"
    assert not set(cited) & {source["document_id"] for source in answer["see_also"]}
    for source in [*answer["sources"], *answer["see_also"]]:
        assert set(source) >= {"document_id", "title", "excerpt", "score"}


def guide_section_items(slug: str, heading: str) -> list[str]:
    document = next(document for document in guide_documents() if document.key == f"guide:{slug}")
    index = [name for name, _ in _sections(document.text, "markdown")].index(heading)
    return section_steps(section_text(document.text, fmt="markdown", index=index))


def test_how_to_question_lists_the_guide_sections_steps_whole_in_order_and_cited_once(kb, alice_api):
    answer = ask(alice_api, start(alice_api), "How do I turn on two-factor login?").json()
    text = answer["answer"]
    lines = text.split("\n")
    assert re.fullmatch(r".*Turning it on \[1\]:", lines[0]), text
    steps = [re.sub(r"^\d+\. ", "", line) for line in lines[1:]]
    assert [line.split(".", 1)[0] for line in lines[1:]] == [str(n) for n in range(1, len(steps) + 1)]
    expected = guide_section_items("accounts", "Turning it on")
    assert steps == expected and len(steps) >= 3
    assert steps[0].startswith("Install an authenticator app")
    assert markers(text) == [1], "the steps are cited once"
    assert [source["code"] for source in answer["sources"]] == ["guide:accounts"]
    assert_numbered_in_order_of_use(answer)


def test_hpo_term_question_names_the_term_and_code_first_and_lists_only_that_source(kb, alice_api):
    answer = ask(alice_api, start(alice_api), "What is the Human Phenotype Ontology term for seizures?").json()
    assert answer["answer"].startswith("Seizure (HPO HP:0001250): "), answer["answer"]
    first_sentence = answer["answer"].split(". ", 1)[0]
    assert "abnormal" in first_sentence  # the definition, not a neighbour's sentence
    assert [source["code"] for source in answer["sources"]] == ["HPO HP:0001250"]
    assert_numbered_in_order_of_use(answer)


def test_icd_code_answer_names_the_code_first_and_cites_its_document_once(kb, alice_api):
    answer = ask(alice_api, start(alice_api), "What does ICD-10 code E11 cover?").json()
    assert answer["answer"].startswith("Type 2 diabetes mellitus (ICD-10-CM E11): "), answer["answer"]
    assert set(markers(answer["answer"])) == {1}
    assert [source["code"] for source in answer["sources"]] == ["ICD-10-CM E11"]
    assert_numbered_in_order_of_use(answer)


def test_lay_code_question_gets_the_code_in_the_first_sentence(kb, alice_api):
    answer = ask(alice_api, start(alice_api), "Which code do doctors use for adult-onset sugar diabetes?").json()
    first_sentence = answer["answer"].split(": ", 1)[0]
    assert "E11" in first_sentence, answer["answer"]
    assert answer["sources"][0]["code"] == "ICD-10-CM E11"
    assert_numbered_in_order_of_use(answer)


def test_definition_question_gives_the_definition_first(kb, alice_api):
    answer = ask(alice_api, start(alice_api), "What are cross-validation folds?").json()
    assert answer["answer"].startswith("Cross-validation folds: The data is split into parts"), answer["answer"]
    assert [source["code"] for source in answer["sources"]] == ["guide:training"]
    assert_numbered_in_order_of_use(answer)


def test_history_and_export_keep_sources_and_see_also_apart(kb, alice_api):
    conversation_id = start(alice_api)
    answer = ask(alice_api, conversation_id, "What is the Human Phenotype Ontology term for seizures?").json()
    assert answer["see_also"], "the other retrieved documents are offered as see-also"
    history = alice_api.get(f"/chat/history?conversation_id={conversation_id}").json()
    assert history["messages"][1]["sources"] == answer["sources"]
    assert history["messages"][1]["see_also"] == answer["see_also"]
    exported = alice_api.get(f"/chat/export?conversation_id={conversation_id}").json()
    assert exported["messages"][1]["see_also"] == answer["see_also"]


def chunk(key: str, document: str) -> RetrievedChunk:
    return RetrievedChunk(key=key, text="t", title=document, source="s", code=document, score=0.5, document=document)


def test_citations_are_renumbered_per_document_in_order_of_first_use():
    chunks = [chunk("a#0", "A"), chunk("b#0", "B"), chunk("a#1", "A"), chunk("c#0", "C")]
    cited = cite_in_order("B says so [2]. A agrees [3][1]. Again [1] [1]. Nonsense [9].", chunks)
    assert cited.text == "B says so [1]. A agrees [2]. Again [2]. Nonsense."
    assert cited.cited == [[1], [2, 0]]
    assert cited.see_also == [3]


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How do I upload a dataset?", "how_to"),
        ("How do I use a backup code?", "how_to"),
        ("What is the HPO term for seizures?", "code"),
        ("code for a broken thigh bone", "code"),
        ("What does HP:0000822 mean?", "code"),
        ("What does the Brier score mean?", "definition"),
        ("What happens if my account is locked?", "other"),
        ("Can I attach a PDF to a conversation?", "how_to"),
        ("Tell me about seizures", "other"),
    ],
)
def test_questions_are_classified_by_their_wording(question, kind):
    from chatbot.rag.answering import classify_question

    assert classify_question(question) == kind
