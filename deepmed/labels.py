"""The words every page uses for the platform's internal values; the JSON API keeps the bare values.

One map for the whole interface, so a clinician reads "Support vector machine", "ROC AUC", "class weighting" or
"mutual information" wherever the value appears, and never `svm`, `roc_auc`, `class_weight` or `mutual_info`.
Values are grouped by what they name, because the same value can mean two things: `random_forest` is a model and
also a feature-selection method, `none` is no scaling and also no imbalance handling.

`label(value, group)` returns the words for `value` in `group`; templates use the `|label:"group"` filter
(`{% load labels %}`). A value the map does not know is shown with its underscores turned into spaces.
"""

from __future__ import annotations

from typing import Any

LABELS: dict[str, dict[str, str]] = {
    "model": {
        "svm": "Support vector machine",
        "random_forest": "Random forest",
        "logistic_regression": "Logistic regression",
        "naive_bayes": "Gaussian naive Bayes",
        "knn": "k-nearest neighbours",
        "decision_tree": "Decision tree",
        "hist_gradient_boosting": "Histogram gradient boosting",
        # image classifiers
        "efficientnet_lite0": "EfficientNet-Lite0",
        "efficientnet_b0": "EfficientNet-B0",
        "resnet18": "ResNet-18",
        "resnet34": "ResNet-34",
        "resnet50": "ResNet-50",
        "resnet101": "ResNet-101",
        "vgg16": "VGG-16",
        "vgg19": "VGG-19",
        "densenet121": "DenseNet-121",
        "mobilenet_v2": "MobileNetV2",
        "mobilenet_v3_small": "MobileNetV3 small",
        "mobilenet_v3_large": "MobileNetV3 large",
        # anomaly detectors
        "reconstruction": "Reconstruction error (autoencoder)",
        "isolation_forest": "Isolation Forest",
        "local_outlier_factor": "Local Outlier Factor",
        "one_class_svm": "One-class support vector machine",
    },
    "metric": {
        "roc_auc": "ROC AUC",
        "pr_auc": "PR AUC",
        "accuracy": "Accuracy",
        "balanced_accuracy": "Balanced accuracy",
        "sensitivity": "Sensitivity",
        "specificity": "Specificity",
        "precision": "Precision",
        "f1": "F1 score",
        "brier": "Brier score",
        "log_loss": "Log loss",
        "mae": "Mean absolute error",
        "rmse": "Root mean squared error",
        "r2": "R²",
        "median_ae": "Median absolute error",
        "mape": "Mean absolute percentage error",
    },
    "imbalance": {
        "class_weight": "class weighting",
        "smote": "SMOTE (synthetic rare-class rows, training folds only)",
        "none": "none",
    },
    "selection": {
        "correlation": "correlation with the outcome",
        "mutual_info": "mutual information",
        "anova_f": "ANOVA F-test",
        "chi2": "chi-squared test",
        "random_forest": "random forest importance",
        "l1": "L1-penalised logistic regression",
        "rfe": "recursive feature elimination",
    },
    "plan_field": {
        "action": "Action",
        "impute": "Fill missing with",
        "outliers": "Outliers",
        "encode": "Encoding",
        "scale": "Scaling",
        "zeros_as_missing": "Zeros",
    },
    "action": {"keep": "keep", "drop": "drop"},
    "zeros_as_missing": {"false": "keep zeros", "true": "0 means missing"},
    "impute": {
        "median": "median",
        "mean": "mean",
        "most_frequent": "most frequent value",
        "constant": "a fixed value",
        "knn": "similar patients (k-nearest neighbours)",
        "iterative": "estimated from the other columns (iterative)",
    },
    "outliers": {"keep": "keep", "clip": "clip to the usual range", "drop_rows": "drop those rows"},
    "encode": {
        "none": "none (numbers as they are)",
        "onehot": "one column per category",
        "ordinal": "numbered categories",
        "frequency": "category frequency",
        "datetime": "date parts (year, month, weekday)",
    },
    "scale": {
        "standard": "standardise",
        "minmax": "rescale to 0–1",
        "robust": "robust (median and IQR)",
        "none": "none",
    },
    "kind": {
        # dataset profile kinds
        "numeric": "number",
        "categorical": "category",
        "boolean": "yes/no",
        "datetime": "date",
        "text": "free text",
        "identifier": "identifier",
        # model input schema kinds
        "number": "number",
        "category": "category",
        "date": "date",
    },
    "flag": {
        "identifier": "identifier",
        "personal_data": "personal data",
        "constant": "constant",
        "near_constant": "nearly constant",
        "high_cardinality": "very many categories",
        "many_missing": "many missing values",
        "leakage": "possible leakage",
        "zero_as_missing": "zeros probably mean missing",
    },
    "calibration": {
        "none": "not recalibrated",
        "sigmoid": "recalibrated (sigmoid)",
        "isotonic": "recalibrated (isotonic)",
    },
    "threshold_method": {
        "youden": "Youden's J on out-of-fold predictions",
        "target_sensitivity": "the lowest threshold reaching the target sensitivity",
    },
    "hyperparameter": {
        "C": "regularisation strength (C)",
        "ccp_alpha": "pruning strength",
        "criterion": "split criterion",
        "degree": "polynomial degree",
        "gamma": "kernel width (gamma)",
        "kernel": "kernel",
        "learning_rate": "learning rate",
        "max_depth": "maximum depth",
        "max_features": "features tried per split",
        "max_iter": "boosting rounds",
        "max_leaf_nodes": "maximum leaves",
        "min_samples_leaf": "minimum rows per leaf",
        "n_estimators": "number of trees",
        "n_neighbors": "neighbours (k)",
        "p": "distance power (p)",
        "solver": "solver",
        "var_smoothing": "variance smoothing",
        "weights": "neighbour weighting",
        "penalty": "penalty",
        "l1_ratio": "L1 share of the penalty",
        "class_weight": "class weighting",
        "coef0": "kernel offset (coef0)",
    },
    "hyperparameter_value": {
        "rbf": "radial basis function",
        "linear": "linear",
        "poly": "polynomial",
        "scale": "scaled to the data",
        "sqrt": "square root of the features",
        "log2": "log₂ of the features",
        "gini": "Gini impurity",
        "entropy": "entropy",
        "log_loss": "log loss",
        "uniform": "equal",
        "distance": "closer ones count more",
        "balanced": "balanced",
        "lbfgs": "L-BFGS",
        "liblinear": "liblinear",
        "saga": "SAGA",
    },
    "run_kind": {"tabular": "Tabular classification", "image": "Image classification", "anomaly": "Anomaly detection"},
    "task": {"binary": "two outcomes", "multiclass": "several outcomes", "regression": "a measurement"},
}


def label(value: Any, group: str) -> str:
    """The words for `value` among the `group` labels; an unknown value with underscores read as spaces."""
    if value is None:
        return ""
    text = str(value)
    return LABELS.get(group, {}).get(text, text.replace("_", " "))


def hyperparameter_name(name: str) -> str:
    """`clf__max_depth` → "maximum depth": the step prefix of a pipeline parameter is left out."""
    return label(str(name).rsplit("__", 1)[-1], "hyperparameter")


def hyperparameter_value(value: Any) -> str:
    """A searched value as a reader wants it: no Python None, floats to four significant digits."""
    if value is None:
        return "no limit"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return label(value, "hyperparameter_value")


def choices(values, group: str) -> list[tuple[str, str]]:
    """(value, words) pairs for a form's select, in the order given."""
    return [(str(value), label(value, group)) for value in values]
