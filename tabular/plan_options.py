"""Words the pages use for profile flags, plan settings and selection methods (the API uses the bare values)."""

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


_LABELS = {
    "most_frequent": "most frequent",
    "drop_rows": "drop rows",
    "onehot": "one-hot",
    "minmax": "min-max",
    "mutual_info": "mutual information",
    "anova_f": "ANOVA F",
    "chi2": "chi²",
    "l1": "L1 (logistic)",
    "rfe": "recursive elimination (RFE)",
    "random_forest": "random forest importance",
}


def _choices(values) -> list[tuple[str, str]]:
    return [(str(value), _LABELS.get(str(value), str(value).replace("_", " "))) for value in values]


# The plan editor's selects offer exactly the values the plan validator accepts.
PLAN_FIELD_CHOICES: dict[str, list[tuple[str, str]]] = {
    "action": _choices(cleaning.ACTIONS),
    "impute": _choices(cleaning.IMPUTE_METHODS),
    "outliers": _choices(cleaning.OUTLIER_METHODS),
    "encode": _choices(cleaning.ENCODE_METHODS),
    "scale": _choices(cleaning.SCALE_METHODS),
}
FEATURE_SELECTION_METHODS = _choices(selection.METHODS)
