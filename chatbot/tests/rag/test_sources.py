import pytest

from chatbot.rag.sources import hpo_documents, icd10cm_documents, parse_obo


@pytest.fixture(scope="module")
def icd_documents():
    return {document.code: document for document in icd10cm_documents()}


def test_icd10cm_has_one_document_per_category(icd_documents):
    assert len(icd_documents) > 1800
    assert all(len(code.split()[-1]) == 3 for code in icd_documents)


def test_e11_carries_its_inclusion_and_exclusion_terms_and_subcodes(icd_documents):
    e11 = icd_documents["ICD-10-CM E11"]
    assert e11.title == "ICD-10-CM E11: Type 2 diabetes mellitus"
    assert e11.source == "ICD-10-CM" and e11.key == "icd10cm:E11"
    assert "insulin resistant diabetes (mellitus)" in e11.text  # an "includes" term
    assert "type 1 diabetes mellitus (E10.-)" in e11.text  # an excludes1 term
    assert "E11.9 Type 2 diabetes mellitus without complications" in e11.text
    assert "2026" in e11.version and "simple_icd_10_cm" in e11.version
    assert "Public domain" in e11.licence


def test_icd10cm_excludes2_terms_are_labelled(icd_documents):
    i10 = icd_documents["ICD-10-CM I10"]
    assert "Excludes2" in i10.text and "involving vessels of brain (I60-I69)" in i10.text
    assert "high blood pressure" in i10.text


def test_hpo_term_has_its_definition_synonyms_and_parents():
    documents = {document.code: document for document in hpo_documents()}
    assert len(documents) > 15000
    seizure = documents["HPO HP:0001250"]
    assert seizure.title == "HPO HP:0001250: Seizure"
    assert "abnormal excessive or synchronous neuronal activity in the brain" in seizure.text
    assert "[" not in seizure.text.split("\n")[0]  # the definition's [refs] are stripped
    assert "Epileptic seizure" in seizure.text
    assert "A kind of: Abnormal nervous system physiology." in seizure.text
    assert seizure.version.startswith("HPO 20")
    # The root term has no definition and is left out.
    assert "HPO HP:0000001" not in documents


def test_obo_parser_skips_obsolete_terms_and_unquotes_definitions(tmp_path):
    obo = tmp_path / "mini.obo"
    obo.write_text(
        "format-version: 1.2\ndata-version: hp/releases/2099-01-01\n\n"
        '[Term]\nid: HP:1\nname: Alive\ndef: "Says \\"hi\\"." [PMID:1, ORCID:2]\nsynonym: "Living" EXACT []\n'
        "is_a: HP:0 ! Root\n\n"
        '[Term]\nid: HP:2\nname: obsolete Gone\ndef: "Old." []\nis_obsolete: true\n\n'
        "[Typedef]\nid: part_of\nname: part of\n",
        encoding="utf-8",
    )
    version, terms = parse_obo(obo)
    assert version == "hp/releases/2099-01-01"
    assert [term["id"] for term in terms] == ["HP:1", "HP:2"]
    assert (
        terms[0]["definition"] == 'Says "hi".' and terms[0]["synonyms"] == ["Living"] and terms[0]["is_a"] == ["HP:0"]
    )
    assert terms[1]["obsolete"] is True
    documents = hpo_documents(obo)
    assert [document.code for document in documents] == ["HPO HP:1"]
    assert documents[0].version == "HPO 2099-01-01"


def test_icd10cm_keys_are_unique_even_for_single_category_blocks(icd_documents):
    keys = [document.key for document in icd10cm_documents()]
    assert len(keys) == len(set(keys)) == len(icd_documents)
    assert "ICD-10-CM C50" in icd_documents
