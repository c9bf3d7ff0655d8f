import json

import numpy as np
import pandas as pd
import pytest

from tabular.ml.cleaning import plan_cleaning
from tabular.ml.llm import build_refinement_prompt, refine_plan_with_llm
from tabular.ml.profiling import profile_frame

SENTINEL_TEXT = ["Xyzzy-Quokka", "Plugh-Wombat", "Frobozz-Numbat"]
SENTINEL_NUMBERS = [987654.321, 123456.789, 555111.222]


@pytest.fixture
def profile_and_plan():
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame(
        {
            "patient_name": [f"{SENTINEL_TEXT[i % 3]} Person{i}" for i in range(n)],
            "ward": [SENTINEL_TEXT[i % 3] for i in range(n)],
            "marker": [SENTINEL_NUMBERS[i % 3] + i for i in range(n)],
            "age": rng.integers(30, 80, n),
            "y": rng.choice(["pos", "neg"], n),
        }
    )
    profile = profile_frame(frame, target="y")
    return profile, plan_cleaning(profile, "y")


def test_prompt_contains_metadata_but_no_cell_value(profile_and_plan):
    profile, plan = profile_and_plan
    prompt = build_refinement_prompt(profile, plan)
    assert "ward" in prompt and "marker" in prompt and "personal_data" in prompt
    for value in SENTINEL_TEXT:
        assert value not in prompt
    for number in SENTINEL_NUMBERS:
        assert str(int(number)) not in prompt
        assert f"{number:.3f}" not in prompt
    assert '"pos"' not in prompt and '"neg"' not in prompt


def _answer(*edits):
    return "Here you go:\n```json\n" + json.dumps({"edits": list(edits)}) + "\n```"


def test_valid_edits_are_applied(profile_and_plan):
    profile, plan = profile_and_plan
    answer = _answer({"column": "marker", "field": "impute", "value": "mean", "reason": "symmetric"})
    refined = refine_plan_with_llm(plan, profile, lambda prompt: answer)
    assert refined.column("marker").impute == "mean"
    assert "symmetric" in refined.column("marker").reason
    assert plan.column("marker").impute == "median"


@pytest.mark.parametrize(
    "answer",
    [
        "not json at all",
        '{"edits": "drop everything"}',
        _answer({"column": "ghost", "field": "impute", "value": "mean"}),
        _answer({"column": "marker", "field": "impute", "value": "magic"}),
        _answer({"column": "marker", "field": "colour", "value": "red"}),
        _answer({"column": "patient_name", "field": "action", "value": "keep"}),
        _answer({"column": "y", "field": "action", "value": "drop"}),
        _answer({"column": "ward", "field": "encode", "value": "none"}),
        _answer({"column": "marker", "field": "impute", "value": "mean"}, "oops"),
    ],
)
def test_invalid_or_unsafe_answers_keep_the_original_plan(profile_and_plan, answer):
    profile, plan = profile_and_plan
    assert refine_plan_with_llm(plan, profile, lambda prompt: answer) == plan


def test_a_failing_model_keeps_the_original_plan(profile_and_plan):
    profile, plan = profile_and_plan

    def broken(prompt):
        raise ConnectionError("model unavailable")

    assert refine_plan_with_llm(plan, profile, broken) == plan
