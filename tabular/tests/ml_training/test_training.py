"""train_models on tiny data: every model trains, SMOTE stays inside folds, groups stay whole, stop and failures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from imblearn.over_sampling import SMOTE

from tabular.ml import training
from tabular.ml.metrics import METRIC_KEYS
from tabular.ml.models import MODEL_NAMES, SearchSpace, param_grid
from tabular.ml.training import TrainingError, train_models

from .helpers import patients, preprocessor

FAST = {"level": 1, "cv_folds": 3, "n_bootstrap": 100, "n_jobs": 1}


@pytest.fixture(scope="module")
def all_models_result():
    X, y = patients(240)
    events = []
    result = train_models(X, y, preprocessor=preprocessor(), models=list(MODEL_NAMES), progress=events.append, **FAST)
    return X, y, result, events


def test_every_catalogue_model_trains_and_beats_chance(all_models_result):
    X, _, result, _ = all_models_result
    assert result.errors == []
    assert not result.stopped
    assert sorted(m.name for m in result.models) == sorted(MODEL_NAMES)
    for model in result.models:
        assert set(model.metrics) == set(METRIC_KEYS)
        assert model.metrics["roc_auc"] > 0.7, model.name
        low, high = model.intervals["roc_auc"]
        assert low <= model.metrics["roc_auc"] <= high
        assert 0.0 <= model.threshold <= 1.0
        proba = model.estimator.predict_proba(X.head(5))
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        assert model.calibration in ("none", "sigmoid", "isotonic")


def test_models_are_ranked_by_the_primary_metric_on_the_hold_out(all_models_result):
    _, _, result, _ = all_models_result
    scores = [m.metrics["roc_auc"] for m in result.models]
    assert scores == sorted(scores, reverse=True)
    assert result.best_model() is result.models[0]


def test_svm_probabilities_come_from_calibrated_decision_values(all_models_result):
    _, _, result, _ = all_models_result
    svm = next(m for m in result.models if m.name == "svm")
    assert svm.score_method == "decision_function"
    # No internal 5-fold Platt scaling (`probability=True`, deprecated in scikit-learn 1.9) on any fit.
    assert svm.estimator.named_steps["clf"].estimator.probability in (False, "deprecated")
    assert svm.calibration in ("sigmoid", "isotonic")


def test_the_served_pipeline_predicts_with_the_chosen_threshold(all_models_result):
    X, _, result, _ = all_models_result
    model = result.models[0]
    proba = model.estimator.predict_proba(X)
    positive = list(model.estimator.classes_).index(result.positive_label)
    expected = np.where(proba[:, positive] >= model.threshold, result.positive_label, "healthy")
    assert result.positive_label == "sick"
    assert list(model.estimator.predict(X)) == list(expected)


def test_result_is_json_serialisable_without_the_estimator(all_models_result):
    _, _, result, _ = all_models_result
    data = json.loads(json.dumps(result.to_dict()))
    assert data["n_train"] + data["n_test"] == 240
    first = data["models"][0]
    assert "estimator" not in first
    assert set(first["curves"]) == {"roc", "pr", "calibration"}
    assert len(first["confusion_matrix"]["matrix"]) == 2


def test_progress_reports_every_fit_with_elapsed_time_and_an_estimate(all_models_result):
    _, _, result, events = all_models_result
    search = [e for e in events if e.stage == "search"]
    expected_fits = sum(len(param_grid(name, 1).params[0]) and 3 * _n(name) for name in MODEL_NAMES)
    assert len(search) == expected_fits
    assert all(e.eta_seconds is not None and e.eta_seconds >= 0 for e in search)
    assert search[-1].fits_done == search[-1].fits_total
    assert events[-1].stage == "done"
    assert [e.elapsed_seconds for e in events] == sorted(e.elapsed_seconds for e in events)


def _n(name: str) -> int:
    return param_grid(name, 1).n_candidates()


def test_hold_out_is_stratified_and_disjoint(all_models_result):
    _, y, result, _ = all_models_result
    assert set(result.train_positions).isdisjoint(result.test_positions)
    assert len(result.test_positions) == 48
    train_share = (y.iloc[result.train_positions] == "sick").mean()
    test_share = (y.iloc[result.test_positions] == "sick").mean()
    assert abs(train_share - test_share) < 0.03


class SpySMOTE(SMOTE):
    """SMOTE that records which original rows (by the row_id feature) each fit_resample call received."""

    calls: list[set[int]] = []

    def fit_resample(self, X, y, **params):
        SpySMOTE.calls.append(set(np.asarray(X)[:, 0].round().astype(int).tolist()))
        return super().fit_resample(X, y, **params)


def test_smote_sees_only_training_fold_rows(monkeypatch):
    from sklearn.compose import ColumnTransformer

    X, y = patients(200, weights=[0.8, 0.2])
    X.insert(0, "row_id", np.arange(len(X)))
    prep = ColumnTransformer([("ids", "passthrough", ["row_id"])], remainder="drop", sparse_threshold=0.0)
    SpySMOTE.calls = []
    monkeypatch.setattr(training, "SMOTE", SpySMOTE)
    result = train_models(X, y, preprocessor=prep, models=["decision_tree"], imbalance="smote", **FAST)
    assert result.errors == []
    model = result.models[0]
    assert model.imbalance == "smote"
    train_ids, test_ids = set(result.train_positions.tolist()), set(result.test_positions.tolist())
    folds = training._folds(np.array([0 if v == "healthy" else 1 for v in y.iloc[result.train_positions]]), None, 3, 0)
    fold_training_ids = [set(result.train_positions[tr].tolist()) for tr, _ in folds]
    # One call per (candidate, fold) plus the refit; never a validation or hold-out row.
    assert len(SpySMOTE.calls) == model.n_candidates * 3 + 1
    for seen in SpySMOTE.calls:
        assert seen.isdisjoint(test_ids)
        assert seen in fold_training_ids or seen == train_ids
    assert SpySMOTE.calls[-1] == train_ids


def test_group_rows_never_straddle_hold_out_or_folds():
    X, y = patients(240)
    groups = pd.Series(np.repeat(np.arange(60), 4), name="patient")
    result = train_models(X, y, preprocessor=preprocessor(), models=["naive_bayes"], groups=groups, **FAST)
    assert result.grouped and result.errors == []
    train_groups = set(groups.iloc[result.train_positions])
    test_groups = set(groups.iloc[result.test_positions])
    assert train_groups.isdisjoint(test_groups)
    y_index = (y.iloc[result.train_positions] == "sick").astype(int).to_numpy()
    group_train = groups.iloc[result.train_positions].to_numpy()
    for train_rows, valid_rows in training._folds(y_index, group_train, 3, 0):
        assert set(group_train[train_rows]).isdisjoint(group_train[valid_rows])


def test_target_sensitivity_is_honoured_on_out_of_fold_predictions():
    X, y = patients(240)
    result = train_models(
        X, y, preprocessor=preprocessor(), models=["logistic_regression"], target_sensitivity=0.95, **FAST
    )
    model = result.models[0]
    assert model.threshold_info["method"] == "target_sensitivity"
    assert model.threshold_info["sensitivity"] >= 0.95
    assert model.oof_metrics["sensitivity"] >= 0.95


def test_stop_after_the_first_model_keeps_it_and_marks_the_run_stopped():
    X, y = patients(200)
    finished = []

    def progress(event):
        if event.stage == "model_done":
            finished.append(event.model)

    result = train_models(
        X,
        y,
        preprocessor=preprocessor(),
        models=["naive_bayes", "decision_tree", "knn"],
        progress=progress,
        should_stop=lambda: bool(finished),
        **FAST,
    )
    assert result.stopped
    assert [m.name for m in result.models] == ["naive_bayes"]
    assert result.models[0].estimator.predict(X.head(3)).shape == (3,)


def test_stop_is_checked_between_folds(monkeypatch):
    X, y = patients(200)
    fits = []
    started = []
    real_fit = training._fit_and_score

    def counting_fit(*args, **kwargs):
        started.append(1)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(training, "_fit_and_score", counting_fit)

    def progress(event):
        if event.stage == "search":
            fits.append(event.fits_done)

    result = train_models(
        X,
        y,
        preprocessor=preprocessor(),
        models=["random_forest", "naive_bayes"],
        progress=progress,
        should_stop=lambda: len(fits) >= 2,
        **FAST,
    )
    assert result.stopped
    assert result.models == []
    assert fits == [1, 2]
    assert len(started) == 2  # the remaining fits never ran


def test_a_failing_model_is_recorded_and_the_others_continue():
    X, y = patients(200)
    result = train_models(
        X,
        y,
        preprocessor=preprocessor(),
        models=["svm", "naive_bayes"],
        param_grids={"svm": {"clf__C": [-1.0]}},
        **FAST,
    )
    assert [m.name for m in result.models] == ["naive_bayes"]
    assert result.errors[0]["model"] == "svm"
    assert "C" in result.errors[0]["reason"]
    assert not result.stopped


def test_multiclass_gets_macro_and_per_class_figures_without_threshold():
    X, y = patients(270, n_classes=3)
    result = train_models(X, y, preprocessor=preprocessor(), models=["logistic_regression", "svm"], **FAST)
    assert result.task == "multiclass" and result.errors == []
    for model in result.models:
        assert model.threshold is None
        assert set(model.metrics["per_class"]) == {"critical", "healthy", "sick"}
        assert model.metrics["roc_auc"] > 0.7
        assert len(model.confusion_matrix["matrix"]) == 3
        assert set(model.curves["per_class"]) == {"critical", "healthy", "sick"}
        np.testing.assert_allclose(model.estimator.predict_proba(X.head(4)).sum(axis=1), 1.0)
    json.dumps(result.to_dict())


def test_too_few_rows_in_a_class_for_the_folds_is_refused_with_a_clear_message():
    X, y = patients(60, weights=[0.93, 0.07])
    with pytest.raises(TrainingError, match="fold"):
        train_models(X, y, preprocessor=preprocessor(), models=["naive_bayes"], cv_folds=5, level=1)


def test_unknown_model_is_refused_naming_the_catalogue():
    X, y = patients(60)
    with pytest.raises(TrainingError, match="hist_gradient_boosting"):
        train_models(X, y, preprocessor=preprocessor(), models=["xgboost"])


def test_search_levels_grow_from_small_grids_to_randomised_search():
    for name in MODEL_NAMES:
        sizes = [param_grid(name, level).n_candidates() for level in (1, 2, 3)]
        assert sizes[0] <= sizes[1] <= sizes[2], name
        assert param_grid(name, 4).kind == "random" and param_grid(name, 5).n_iter > param_grid(name, 4).n_iter
    assert isinstance(param_grid("svm", 2), SearchSpace)
    kernels = {k for grid in param_grid("svm", 2).params for k in grid["clf__kernel"]}
    assert kernels == {"linear", "rbf", "poly"}
    penalties = {r for grid in param_grid("logistic_regression", 2).params for r in grid["clf__l1_ratio"]}
    assert penalties == {0.0, 0.5, 1.0}


def test_it_trains_on_the_cleaning_plans_preprocessor():
    from tabular.ml.cleaning import build_preprocessor, plan_cleaning
    from tabular.ml.profiling import profile_frame

    X, y = patients(200)
    frame = X.assign(outcome=y)
    plan = plan_cleaning(profile_frame(frame, target="outcome"), "outcome")
    result = train_models(
        frame[plan.feature_columns], y, preprocessor=build_preprocessor(plan), models=["logistic_regression"], **FAST
    )
    assert result.errors == []
    assert result.models[0].metrics["roc_auc"] > 0.8
