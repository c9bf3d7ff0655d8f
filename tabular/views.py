"""Pages for datasets: upload, list, detail with preview, profile, cleaning plan, report and feature selection.

Thin views: the services do the work, and refusals (ApplicationError) are shown on the page they came from.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from deepmed.exceptions import ApplicationError

from . import selectors, services
from .forms import DatasetUploadForm, FeatureSelectionForm, TargetForm
from .plan_options import FEATURE_SELECTION_METHODS, PLAN_FIELD_CHOICES, explain_flag

PREVIEW_ROWS_PER_PAGE = selectors.PREVIEW_ROWS_PER_PAGE


def _wants_json_answer(request) -> bool:
    # The upload script asks for JSON so it can show progress and errors without leaving the page.
    return "application/json" in request.headers.get("Accept", "")


@login_required
@require_http_methods(["GET", "POST"])
def upload(request):
    form = DatasetUploadForm()
    error = None
    status = 200
    if request.method == "POST":
        try:
            # Judge the declared size before touching request.FILES, which would spool the whole body first.
            services.refuse_oversized_request(request)
            form = DatasetUploadForm(request.POST, request.FILES)
            if form.is_valid():
                dataset = services.dataset_create(
                    user=request.user,
                    uploaded_file=form.cleaned_data["file"],
                    name=form.cleaned_data["name"],
                    sheet=form.cleaned_data["sheet"],
                )
                url = reverse("tabular-dataset", args=[dataset.pk])
                if _wants_json_answer(request):
                    return JsonResponse({"id": dataset.pk, "redirect": url}, status=201)
                messages.success(request, f"Dataset “{dataset.name}” uploaded: {dataset.n_rows} rows.")
                return redirect(url)
            error = " ".join(message for errors in form.errors.values() for message in errors)
            code = "invalid"
        except ApplicationError as exc:
            error, code = exc.message, exc.code
        status = 400
        if _wants_json_answer(request):
            return JsonResponse({"detail": error, "code": code}, status=status)
    return render(request, "tabular/upload.html", {"form": form, "error": error}, status=status)


@login_required
def dataset_list(request):
    datasets = selectors.dataset_list_for_user(user=request.user)
    return render(request, "tabular/dataset_list.html", {"datasets": datasets})


def _page_number(request) -> int:
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


@login_required
def dataset_detail(request, pk: int):
    dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=pk)
    context = {
        "dataset": dataset,
        "preview": selectors.dataset_preview(dataset=dataset, page=_page_number(request)),
        "plans": selectors.cleaning_plan_list_for_dataset(user=request.user, dataset=dataset),
        "versions": selectors.dataset_list_for_user(user=request.user).filter(parent=dataset),
        "target_form": TargetForm(columns=dataset.column_names, outcome=_outcome_choice(request, dataset)),
    }
    return render(request, "tabular/dataset_detail.html", context)


def _outcome_choice(request, dataset) -> dict | None:
    """The suggested outcome and the flagged columns; a dataset whose stored copy is gone gets none (and says so)."""
    try:
        return services.dataset_outcome_choice(dataset=dataset)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return None


@login_required
@require_http_methods(["GET", "POST"])
def dataset_delete(request, pk: int):
    dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=pk)
    if request.method == "POST":
        name = dataset.name
        services.dataset_delete(dataset=dataset, request=request)
        messages.success(request, f"Dataset “{name}” and its files were deleted.")
        return redirect("tabular-datasets")
    return render(request, "tabular/dataset_confirm_delete.html", {"dataset": dataset})


@login_required
def dataset_profile(request, pk: int):
    dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=pk)
    target = request.GET.get("target") or ""
    try:
        profile = services.dataset_profile_get(dataset=dataset, target=target)
        outcome = services.dataset_outcome_choice(dataset=dataset)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(reverse("tabular-profile", args=[dataset.pk]))
    # Only the choice matters here (the page shows the class balance): a flagged target is shown, not refused.
    target_form = TargetForm(
        columns=dataset.column_names, outcome=outcome, initial={"target": target} if target else None
    )
    columns = profile.get("columns", [])
    for column in columns:
        column["flag_explanations"] = [(flag, explain_flag(flag)) for flag in column.get("flags", [])]
    charts = {
        # Bin counts the profiler computed on the server: the browser receives numbers, never rows.
        "histograms": {
            column["name"]: column["histogram"]
            for column in columns
            if column.get("kind") == "numeric" and column.get("histogram")
        },
        "missing": [{"name": column["name"], "share": column.get("missing_share", 0.0)} for column in columns],
        "target": profile.get("target"),
    }
    context = {
        "dataset": dataset,
        "profile": profile,
        "columns": columns,
        "target": target,
        "target_form": target_form,
        "charts": charts,
        "flagged": [column for column in columns if column.get("flags")],
    }
    return render(request, "tabular/profile.html", context)


@login_required
@require_POST
def plan_create(request, pk: int):
    dataset = selectors.dataset_get_for_user(user=request.user, dataset_id=pk)
    form = TargetForm(request.POST, columns=dataset.column_names, outcome=_outcome_choice(request, dataset))
    if not form.is_valid():
        errors = form.errors.get("target") if form.data.get("target") else None
        messages.error(
            request, " ".join(errors) if errors else "Choose the outcome column the plan should prepare the data for."
        )
        return redirect("tabular-dataset", pk=dataset.pk)
    try:
        plan = services.cleaning_plan_create(
            user=request.user,
            dataset=dataset,
            target=form.cleaned_data["target"],
            allow_flagged_target=form.cleaned_data["allow_flagged_target"],
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("tabular-dataset", pk=dataset.pk)
    return redirect("tabular-plan", pk=dataset.pk, plan_id=plan.pk)


def _plan_for(request, pk: int, plan_id: int):
    plan = selectors.cleaning_plan_get_for_user(user=request.user, plan_id=plan_id)
    if plan.dataset_id != pk:
        # The URL names a dataset the plan does not belong to: the same answer as any unknown object.
        selectors.dataset_get_for_user(user=request.user, dataset_id=-1)
    return plan


def _edits_from_post(post, plan_columns: list[dict]) -> list[dict]:
    edits = []
    for index, column in enumerate(plan_columns):
        edit = {"name": column["name"]}
        for field in PLAN_FIELD_CHOICES:
            value = post.get(f"col-{index}-{field}")
            if value is not None:
                edit[field] = value
        edits.append(edit)
    return edits


@login_required
@require_http_methods(["GET", "POST"])
def plan_edit(request, pk: int, plan_id: int):
    plan = _plan_for(request, pk, plan_id)
    errors = []
    status = 200
    if request.method == "POST":
        try:
            services.cleaning_plan_update(
                plan=plan, changes={"columns": _edits_from_post(request.POST, plan.plan["columns"])}
            )
        except ApplicationError as exc:
            errors.append(exc.message)
            status = 400
        else:
            if request.POST.get("next") == "apply":
                return _apply_and_redirect(request, plan)
            messages.success(request, "Plan saved.")
            return redirect("tabular-plan", pk=pk, plan_id=plan.pk)
    rows = [
        {
            "index": index,
            "column": column,
            "fields": [(field, choices, column.get(field)) for field, choices in PLAN_FIELD_CHOICES.items()],
        }
        for index, column in enumerate(plan.plan.get("columns", []))
    ]
    context = {"plan": plan, "dataset": plan.dataset, "rows": rows, "errors": errors}
    return render(request, "tabular/plan_edit.html", context, status=status)


def _apply_and_redirect(request, plan):
    try:
        services.cleaning_plan_apply(plan=plan)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("tabular-plan", pk=plan.dataset_id, plan_id=plan.pk)
    return redirect("tabular-plan-report", pk=plan.dataset_id, plan_id=plan.pk)


@login_required
@require_POST
def plan_apply(request, pk: int, plan_id: int):
    return _apply_and_redirect(request, _plan_for(request, pk, plan_id))


@login_required
def plan_report(request, pk: int, plan_id: int):
    plan = _plan_for(request, pk, plan_id)
    if plan.status != plan.Status.APPLIED:
        messages.info(request, "Apply the plan to see its report.")
        return redirect("tabular-plan", pk=pk, plan_id=plan.pk)
    report = plan.report or {}
    context = {"plan": plan, "dataset": plan.dataset, "report": report, "report_columns": _report_columns(report)}
    return render(request, "tabular/plan_report.html", context)


def _report_columns(report: dict) -> list[dict]:
    columns = report.get("columns", [])
    if isinstance(columns, dict):
        columns = [{"name": name, **values} for name, values in columns.items()]
    return columns


@login_required
@require_http_methods(["GET", "POST"])
def feature_selection(request, pk: int, plan_id: int):
    plan = _plan_for(request, pk, plan_id)
    methods = FEATURE_SELECTION_METHODS
    preprocessing = services.preprocessing_for_plan(plan=plan)
    saved = (preprocessing.feature_selector_config if preprocessing else None) or {}
    # The form starts from the last ranking's choices, so "Rank features" again re-ranks the same way.
    initial = {"method": saved.get("method"), "k": saved.get("k") if saved.get("method") else 10}
    initial["threshold"] = saved.get("threshold")
    form = FeatureSelectionForm(methods=methods, initial=initial)
    status = 200
    if request.method == "POST" and request.POST.get("override"):
        try:
            services.feature_selection_override(plan=plan, selected=request.POST.getlist("selected"))
            messages.success(request, "Your choice of columns was saved.")
            return redirect("tabular-features", pk=pk, plan_id=plan.pk)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            status = 400
    elif request.method == "POST":
        form = FeatureSelectionForm(request.POST, methods=methods)
        if form.is_valid():
            try:
                services.feature_selection_run(plan=plan, **form.cleaned_data)
                return redirect("tabular-features", pk=pk, plan_id=plan.pk)
            except ApplicationError as exc:
                form.add_error(None, exc.message)
        status = 400
    preprocessing = services.preprocessing_for_plan(plan=plan)
    config = (preprocessing.feature_selector_config if preprocessing else None) or {}
    selected = set(preprocessing.selected_columns if preprocessing else [])
    ranking = [
        {"feature": feature, "score": score, "selected": feature in selected}
        for feature, score in config.get("ranking", [])
    ]
    context = {
        "plan": plan,
        "dataset": plan.dataset,
        "form": form,
        "config": config,
        "ranking": ranking,
        "chart": {"labels": [row["feature"] for row in ranking], "scores": [row["score"] for row in ranking]},
        "applied": plan.status == plan.Status.APPLIED,
        "n_selected": len(selected),
        "training_url": f"{reverse('tabular-training')}?dataset={plan.dataset_id}&plan={plan.pk}",
    }
    return render(request, "tabular/feature_selection.html", context, status=status)
