"""Profile flag explanations and the choices of the plan and selection forms; words come from deepmed.labels."""

from deepmed.labels import choices

from .ml import cleaning, selection

FLAG_EXPLANATIONS = {
    "identifier": "Almost every value is different, like a record number. It cannot generalise to new patients.",
    "personal_data": "Looks like names, contact details, ID numbers or exact birth dates. Remove it from the source.",
    "constant": "One value everywhere: it carries no information.",
    "near_constant": "Nearly every row has the same value: it carries little information.",
    "high_cardinality": "Very many categories: consider grouping rare ones.",
    "many_missing": "A large share of values is missing; imputing them may mislead.",
    "leakage": "Predicts the outcome almost perfectly alone: it may be recorded after, or derived from, the outcome.",
}


def explain_flag(flag: str) -> str:
    return FLAG_EXPLANATIONS.get(flag, "")


# The plan editor's selects offer exactly the values the plan validator accepts, in the interface's words.
PLAN_FIELD_CHOICES: dict[str, list[tuple[str, str]]] = {
    "action": choices(cleaning.ACTIONS, "action"),
    "impute": choices(cleaning.IMPUTE_METHODS, "impute"),
    "outliers": choices(cleaning.OUTLIER_METHODS, "outliers"),
    "encode": choices(cleaning.ENCODE_METHODS, "encode"),
    "scale": choices(cleaning.SCALE_METHODS, "scale"),
    # Numeric columns only (the page shows it for them): read 0 as a missing value, then impute it.
    "zeros_as_missing": choices(("false", "true"), "zeros_as_missing"),
}
FEATURE_SELECTION_METHODS = choices(selection.METHODS, "selection")
