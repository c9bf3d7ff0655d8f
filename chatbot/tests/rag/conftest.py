import pytest

# A fixed corpus small enough to embed in a fraction of a second, yet with neighbours close enough to rank.
CORPUS = {
    "icd10cm:E11#0": "Type 2 diabetes mellitus (ICD-10-CM E11). Includes insulin resistant diabetes and diabetes NOS.",
    "icd10cm:E10#0": "Type 1 diabetes mellitus (ICD-10-CM E10). Includes juvenile onset diabetes and brittle diabetes.",
    "icd10cm:I10#0": "Essential (primary) hypertension (ICD-10-CM I10). Includes high blood pressure.",
    "hpo:HP:0001250#0": "Seizure (HPO HP:0001250): an intermittent abnormality of nervous system physiology.",
    "hpo:HP:0000822#0": "Hypertension (HPO HP:0000822): the presence of chronic increased pressure in the arteries.",
    "guide:training#0": "Training compares several kinds of model on your dataset with cross-validation folds.",
    "guide:uploading-data#0": "Upload a CSV or Excel file from the datasets page; columns and types are detected.",
}


@pytest.fixture(scope="session")
def embedder():
    from chatbot.rag.embedding import get_embedder

    return get_embedder()


@pytest.fixture(scope="session")
def corpus_vectors(embedder):
    return list(CORPUS), embedder.encode(list(CORPUS.values()))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow_model: loads a real local language model (tens of seconds)")
