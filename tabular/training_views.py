"""Training pages: choose what to train (`/training`), follow a run live and read its leaderboard.

Thin views: `tabular.training` validates and starts; refusals are shown on the form with the field they name.
"""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_http_methods, require_POST

from deepmed.exceptions import ApplicationError
from deepmed.labels import label as interface_label
from modelhub.models import TrainingRun

from . import selectors, services, training
from .forms import CONFIRM_FLAGGED_LABEL, flagged_target_error, outcome_choices, suggested_outcome
from .ml import training as ml_training
from .ml.models import CATALOGUE, LEVELS
from .plan_options import FEATURE_SELECTION_METHODS

IMBALANCE_CHOICES = [
    ("class_weight", "Class weighting (weigh the rare class up)"),
    ("smote", "SMOTE (synthetic rare-class rows, training folds only)"),
    ("none", "None"),
]
METRIC_LABELS = {metric: interface_label(metric, "metric") for metric in ml_training.PRIMARY_METRICS}
LEADERBOARD_METRICS = [
    ("roc_auc", "ROC AUC"),
    ("pr_auc", "PR AUC"),
    ("balanced_accuracy", "Balanced acc."),
    ("sensitivity", "Sensitivity"),
    ("specificity", "Specificity"),
    ("brier", "Brier"),
]


class TrainingForm(forms.Form):
    """The choices of a run; the service checks them again (the API shares it)."""

    dataset = forms.ChoiceField(label="Dataset")
    target = forms.ChoiceField(label="Outcome column")
    cleaning_plan = forms.ChoiceField(label="Cleaning plan", required=False)
    models = forms.MultipleChoiceField(
        label="Models",
        choices=[(spec.name, spec.label) for spec in CATALOGUE.values()],
        widget=forms.CheckboxSelectMultiple,
        initial=list(CATALOGUE),
    )
    cv_folds = forms.IntegerField(label="Cross-validation folds", min_value=2, max_value=10, initial=5)
    imbalance = forms.ChoiceField(label="Imbalance handling", choices=IMBALANCE_CHOICES, initial="class_weight")
    level = forms.IntegerField(
        label="Search intensity (1 = small grid, 5 = wide random search)",
        min_value=LEVELS[0],
        max_value=LEVELS[-1],
        initial=2,
    )
    primary_metric = forms.ChoiceField(
        label="Rank models by", choices=[(m, METRIC_LABELS[m]) for m in ml_training.PRIMARY_METRICS], initial="roc_auc"
    )
    group_column = forms.ChoiceField(label="Group column (e.g. patient ID)", required=False)
    selection_method = forms.ChoiceField(
        label="Feature selection", required=False, choices=[("", "None"), *FEATURE_SELECTION_METHODS]
    )
    selection_k = forms.IntegerField(label="Keep the best k features", required=False, min_value=1)
    run_name = forms.CharField(label="Run name", required=False, max_length=255)
    allow_flagged_target = forms.BooleanField(label=CONFIRM_FLAGGED_LABEL, required=False)
    # Unticked (or absent) means the saved selection applies: it is the default, switched off on purpose.
    ignore_saved_selection = forms.BooleanField(
        label="Train on every column the cleaning plan keeps (ignore the saved feature selection)", required=False
    )

    def __init__(self, *args, datasets, dataset, plans, outcome=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.outcome = outcome
        self.fields["dataset"].choices = [(str(d.pk), d.name) for d in datasets]
        columns = dataset.column_names if dataset is not None else []
        self.fields["target"].choices = outcome_choices(columns, outcome)
        self.fields["target"].initial = suggested_outcome(outcome) or ""
        self.fields["group_column"].choices = [("", "None"), *[(name, name) for name in columns]]
        self.fields["cleaning_plan"].choices = [("", "Automatic plan for the chosen outcome")] + [
            (str(plan.pk), f"Plan {plan.pk} for {plan.target} ({plan.get_status_display().lower()})") for plan in plans
        ]

    def clean(self):
        data = super().clean()
        error = flagged_target_error(data.get("target") or "", self.outcome)
        if error and not data.get("allow_flagged_target"):
            self.add_error("target", error)
        return data


def _chosen_dataset(request, datasets):
    wanted = request.POST.get("dataset") or request.GET.get("dataset")
    if wanted:
        return selectors.dataset_get_for_user(user=request.user, dataset_id=wanted)
    return datasets[0] if datasets else None


def _outcome_choice(request, dataset) -> dict | None:
    if dataset is None:
        return None
    try:
        return services.dataset_outcome_choice(dataset=dataset)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return None


def _saved_selections(request, dataset, plans) -> list[dict]:
    """The feature selection each outcome's next run applies, for the page to show (latest per outcome)."""
    shown = []
    for target in dict.fromkeys(plan.target for plan in plans):
        saved = selectors.feature_selection_saved_for(user=request.user, dataset=dataset, target=target)
        if saved is not None:
            config = saved.feature_selector_config or {}
            shown.append(
                {
                    "target": target,
                    "plan_id": saved.cleaning_plan_id,
                    "method": dict(FEATURE_SELECTION_METHODS).get(config.get("method"), config.get("method")),
                    "overridden": bool(config.get("overridden")),
                    "columns": list(saved.selected_columns),
                    "url": reverse("tabular-features", args=[dataset.pk, saved.cleaning_plan_id]),
                }
            )
    return shown


def _initial_choices(request, dataset, plans, outcome) -> tuple[dict, str]:
    """The form's starting values and the sentence saying why this outcome is pre-selected."""
    initial = {"dataset": str(dataset.pk)} if dataset else {}
    reason = ((outcome or {}).get("suggestion") or {}).get("reason", "")
    wanted_plan = request.GET.get("plan")
    plan = next((plan for plan in plans if str(plan.pk) == wanted_plan), None)
    if plan is not None:
        # Coming from a plan's feature selection: train with that plan, for its outcome.
        initial.update({"cleaning_plan": str(plan.pk), "target": plan.target})
        reason = f"The outcome of cleaning plan {plan.pk}."
    return initial, reason


@login_required
@require_http_methods(["GET", "POST"])
def training_start(request):
    datasets = list(selectors.dataset_list_for_user(user=request.user))
    dataset = _chosen_dataset(request, datasets)
    plans = list(selectors.cleaning_plan_list_for_dataset(user=request.user, dataset=dataset)) if dataset else []
    outcome = _outcome_choice(request, dataset)
    form_options = {"datasets": datasets, "dataset": dataset, "plans": plans, "outcome": outcome}
    initial, outcome_reason = _initial_choices(request, dataset, plans, outcome)
    error = None
    status = 200
    if request.method == "POST":
        form = TrainingForm(request.POST, **form_options)
        if form.is_valid():
            data = form.cleaned_data
            try:
                plan = (
                    selectors.cleaning_plan_get_for_user(user=request.user, plan_id=data["cleaning_plan"])
                    if data["cleaning_plan"]
                    else None
                )
                method = data["selection_method"]
                run = training.training_run_start(
                    user=request.user,
                    dataset=dataset,
                    target=data["target"],
                    cleaning_plan=plan,
                    models=data["models"],
                    level=data["level"],
                    cv_folds=data["cv_folds"],
                    imbalance=data["imbalance"],
                    feature_selection={"method": method, "k": data["selection_k"]} if method else None,
                    group_column=data["group_column"] or None,
                    primary_metric=data["primary_metric"],
                    run_name=data["run_name"],
                    allow_flagged_target=data["allow_flagged_target"],
                    use_saved_selection=not data["ignore_saved_selection"],
                )
            except ApplicationError as exc:
                error = exc.message
            else:
                messages.success(request, "Training started. This page follows it live.")
                return redirect("tabular-run", pk=run.pk)
        else:
            error = "Please correct the fields marked below."
        status = 400
    else:
        form = TrainingForm(initial=initial, **form_options)
    recent = TrainingRun.objects.filter(user=request.user, kind=TrainingRun.Kind.TABULAR)[:10]
    return render(
        request,
        "tabular/training.html",
        {
            "form": form,
            "error": error,
            "dataset": dataset,
            "datasets": datasets,
            "recent_runs": recent,
            "outcome_reason": outcome_reason,
            "saved_selections": _saved_selections(request, dataset, plans) if dataset else [],
        },
        status=status,
    )


def _select_url(model) -> str:
    # The model hub's selection route (built beside this page); until it exists the button is left out.
    try:
        return reverse("modelhub-select", args=[model.model_name, model.metric_name])
    except NoReverseMatch:
        return f"/select_model/{model.model_name}/{model.metric_name}"


def _leaderboard(run: TrainingRun) -> list[dict]:
    ranked = sorted(run.models.all(), key=lambda m: (m.metric_value is None, -(m.metric_value or 0.0), m.pk))
    rows = []
    for rank, model in enumerate(ranked, start=1):
        intervals = model.metrics.get("intervals", {})
        cells = []
        for key, label in LEADERBOARD_METRICS:
            interval = intervals.get(key) or [None, None]
            cells.append(
                {"key": key, "label": label, "value": model.metrics.get(key), "low": interval[0], "high": interval[1]}
            )
        rows.append(
            {
                "rank": rank,
                "model": model,
                "label": model.metrics.get("label", model.model_name),
                "cells": cells,
                "threshold": model.metrics.get("threshold"),
                "calibration": model.metrics.get("calibration"),
                "warnings": model.metrics.get("warnings", []),
                "select_url": _select_url(model),
            }
        )
    return rows


def _chart_data(run: TrainingRun) -> dict:
    return {
        "models": [
            {"name": model.metrics.get("label", model.model_name), "curves": model.metrics.get("curves", {})}
            for model in run.models.order_by("-metric_value", "id")
        ]
    }


def _run_context(run: TrainingRun) -> dict:
    return {
        "run": run,
        "leaderboard": _leaderboard(run) if run.is_terminal else [],
        "chart_data": _chart_data(run) if run.is_terminal else {"models": []},
        "primary_label": METRIC_LABELS.get(run.config.get("primary_metric"), run.config.get("primary_metric")),
        "metric_headers": LEADERBOARD_METRICS,
        "features": selectors.training_run_features(run=run),
        "saved_selection": run.config.get("saved_selection"),
    }


@login_required
def run_detail(request, pk: int):
    run = training.training_run_get_for_user(user=request.user, run_id=pk)
    return render(request, "tabular/run_detail.html", _run_context(run))


@login_required
def run_progress(request, pk: int):
    """The live part of the run page, polled by htmx every 2 s while the run is active."""
    run = training.training_run_get_for_user(user=request.user, run_id=pk)
    response = render(request, "tabular/run_progress.html", _run_context(run))
    if run.is_terminal:
        # Reload the whole page once: the leaderboard and its charts need the page's scripts.
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_POST
def run_stop(request, pk: int):
    run = training.training_run_get_for_user(user=request.user, run_id=pk)
    try:
        training.training_run_stop(run=run)
        messages.info(request, "Stopping: the models already finished are kept.")
    except ApplicationError as exc:
        messages.warning(request, exc.message)
    return redirect("tabular-run", pk=run.pk)
