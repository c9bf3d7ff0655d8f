"""The answer evaluation: at least 40 questions in lay words whose answers are judged (expected code or step in the
text, named in the first sentence, no unrelated source cited), split into a tuned and a held-out half, and the judge
and the app's answer path run end to end on a small knowledge base."""

from collections import Counter

import pytest

from chatbot.rag.eval.evaluate import (
    judge_answer,
    judge_answers,
    knowledge_base_from,
    load_answer_questions,
)


@pytest.fixture(scope="module")
def questions():
    return load_answer_questions()


@pytest.fixture(scope="module")
def term_names():
    from chatbot.rag.sources import hpo_documents, icd10cm_documents

    return {document.code: document.title.split(": ", 1)[1] for document in [*icd10cm_documents(), *hpo_documents()]}


def test_there_are_forty_judged_questions_split_into_a_tuned_and_a_held_out_half(questions):
    assert len(questions) >= 40
    for question in questions:
        assert question["expect"] and question["first"] and question["relevant"], question
        assert question["split"] in {"tune", "held_out"}
    halves = Counter(question["split"] for question in questions)
    assert min(halves.values()) >= 20
    for split in halves:
        assert {question["source"] for question in questions if question["split"] == split} == {
            "ICD-10-CM",
            "HPO",
            "guide",
        }


def test_questions_are_in_lay_words_not_the_documents_own(questions, term_names):
    for question in questions:
        text = question["question"].lower()
        # The answer's code or step is never given away by the question...
        assert not any(expected.lower() in text for expected in question["expect"]), question["question"]
        # ...nor, for a terminology question, the term's own name ("Seizure", "Type 2 diabetes mellitus").
        for label in question["relevant"]:
            if label in term_names:
                assert term_names[label].lower() not in text, (question["question"], term_names[label])


QUESTION = {"expect": ["HP:0001250"], "first": ["HP:0001250"], "relevant": ["HPO HP:0001250"]}


def test_the_judge_wants_the_code_in_the_first_sentence_and_no_unrelated_source():
    right = judge_answer(QUESTION, "Seizure (HPO HP:0001250): A seizure is an intermittent... [1]", ["HPO HP:0001250"])
    assert right.correct
    buried = judge_answer(QUESTION, "Epilepsy is a disorder. Seizure (HPO HP:0001250) [1].", ["HPO HP:0001250"])
    assert buried.in_text and not buried.in_first_sentence and not buried.correct
    neighbour = judge_answer(
        QUESTION, "Seizure (HPO HP:0001250): ... [1] Herpes [2].", ["HPO HP:0001250", "HPO HP:0005353"]
    )
    assert not neighbour.no_unrelated_source and not neighbour.correct
    assert not judge_answer(QUESTION, "I could not find anything relevant.", []).correct


def test_steps_answers_are_judged_by_their_lead_line_and_their_steps():
    question = {"expect": ["authenticator app"], "first": ["Turning it on"], "relevant": ["guide:accounts"]}
    text = "Guide: Accounts — Turning it on [1]:\n1. Install an authenticator app on your phone.\n2. Open Profile."
    assert judge_answer(question, text, ["guide:accounts"]).correct


ANSWERED_ON_A_SMALL_BASE = (
    "code for gallstones",
    "what do doctors call an unusually large head",
    "I lost my phone, how do I get into my account now?",
)


def test_the_app_answer_path_answers_lay_questions_right_on_a_small_knowledge_base(questions, chat_embedder):
    """End to end (retrieval, named-code filter, sections, extractive shapes, citations, judge) on a few documents,
    for tuned-half questions this small base answers: a code first, the right section's steps."""
    from chatbot.rag.eval.evaluate import guide_documents
    from chatbot.rag.sources import hpo_documents, icd10cm_documents

    icd = {"ICD-10-CM E11", "ICD-10-CM E10", "ICD-10-CM I10", "ICD-10-CM G40", "ICD-10-CM K80"}
    hpo = {"HPO HP:0001250", "HPO HP:0000252", "HPO HP:0000256", "HPO HP:0002315"}
    documents = [
        *(document for document in guide_documents() if document.code in {"guide:accounts", "guide:predicting"}),
        *(document for document in icd10cm_documents() if document.code in icd),
        *(document for document in hpo_documents() if document.code in hpo),
    ]
    kb = knowledge_base_from(documents, chat_embedder)
    chosen = [question for question in questions if question["question"] in ANSWERED_ON_A_SMALL_BASE]
    assert {question["split"] for question in chosen} == {"tune"}
    judged = judge_answers(kb, chosen, chat_embedder)
    wrong = [(answer.question["question"], answer.text) for answer in judged if not answer.correct]
    assert len(judged) == len(ANSWERED_ON_A_SMALL_BASE) and not wrong, wrong
    steps = next(answer for answer in judged if answer.question["question"].startswith("I lost my phone"))
    assert steps.text.split("\n")[0].endswith("Lost your phone? [1]:")
    assert "\n1. Log in with a backup code" in steps.text
