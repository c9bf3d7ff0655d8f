from collections import Counter

from chatbot.rag.eval.evaluate import guide_documents, load_questions, score_ranking


def test_the_evaluation_set_has_sixty_questions_across_the_three_sources():
    questions, unanswerable = load_questions()
    assert len(questions) >= 60
    counts = Counter(question["source"] for question in questions)
    assert set(counts) == {"ICD-10-CM", "HPO", "guide"} and min(counts.values()) >= 15
    assert unanswerable
    guide_codes = {document.code for document in guide_documents()}
    for question in questions:
        assert question["relevant"], question
        for label in question["relevant"]:
            assert label.startswith(("ICD-10-CM ", "HPO HP:")) or label in guide_codes, label


def test_guide_documents_are_read_from_the_templates_without_template_tags():
    documents = {document.code: document for document in guide_documents()}
    training = documents["guide:training"]
    assert "{%" not in training.text and "{{" not in training.text
    assert "## Choices you make" in training.text and training.fmt == "markdown"


def test_score_ranking_counts_documents_not_chunks():
    labels = {"a#0": "A", "a#1": "A", "b#0": "B", "c#0": "C"}
    assert score_ranking(["c#0", "a#0", "a#1"], {"A"}, labels) == (1.0, 0.5)
    assert score_ranking(["c#0", "a#1"], {"A", "B"}, labels) == (0.5, 0.5)
    assert score_ranking(["c#0"], {"B"}, labels) == (0.0, 0.0)
