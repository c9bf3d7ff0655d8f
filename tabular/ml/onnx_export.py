"""ONNX export of a served tabular pipeline, offered only where every step translates and the result is checked.

`onnx_export(pipeline, rows) -> OnnxExport`: `model` is the ONNX file (bytes), or None with `problems` saying which
part of this pipeline does not convert. skl2onnx translates scikit-learn's own steps; this module adds converters
for DeepMed's: ToNumeric, ZerosToMissing, IQRClipper, CategoryCaster, FeatureSelector, and the served last step,
CalibratedThresholdClassifier (the classifier's probabilities, its sigmoid or isotonic calibration map and its
decision threshold). SimpleImputer on text columns is translated with "" as the missing value. Resampling steps
(SMOTE) act only while fitting and are left out, as at prediction time; "passthrough" steps are dropped.

What does not translate (the reasons come back in `problems`): scores that are not probabilities (an SVM's decision
values), calibrated multiclass models, DatetimeExpander and FrequencyEncoder, imputers skl2onnx has no converter
for. ONNX computes in float32, so tree models whose splits fall between a value's float64 and float32 forms can
answer differently; the check below then refuses them.

The check: ONNX Runtime, on `rows`, must reproduce the pipeline's probabilities within TOLERANCE and its labels
(for rows not within TOLERANCE of the threshold). An export that would answer differently is never offered.

Inputs of the ONNX model: one tensor per column, named as the column, shape [N, 1]; float32 for numbers and yes/no
(1/0; NaN when missing), string for categories ("" when missing). Outputs: `label` [N] and `probabilities` [N, k],
one column per class in the model's class order.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["OnnxExport", "onnx_export", "onnx_feed"]

# float32 inside ONNX: probabilities agree to ~1e-6, calibrated tails of saturated scores to ~1e-4.
TOLERANCE = 1e-3
OPSETS = {"": 19, "ai.onnx.ml": 3}  # string Equal needs opset 19
_EPS = 1e-6  # as tabular.ml.calibration clips probabilities before their logit


@dataclass
class OnnxExport:
    """The ONNX file of a pipeline (None when it could not be made faithfully), why not, and its input types."""

    model: bytes | None
    problems: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)


# --- the pipeline as prediction runs it ---------------------------------------------------------------------------


def _without_passthrough(step):
    """Drop "passthrough" steps of nested pipelines in place (skl2onnx cannot read them); they change nothing."""
    from sklearn.compose import ColumnTransformer

    if isinstance(step, ColumnTransformer):
        for _label, transformer, _columns in step.transformers_:
            _without_passthrough(transformer)
    inner = getattr(step, "steps", None)
    if inner is not None:
        kept = [(name, value) for name, value in inner if value is not None and not isinstance(value, str)]
        inner[:] = kept or inner
        for _name, value in kept:
            _without_passthrough(value)
    return step


def _served(pipeline):
    """A copy of `pipeline` as an sklearn Pipeline without resampling steps (they act only while fitting)."""
    from sklearn.pipeline import Pipeline

    steps = [(name, step) for name, step in pipeline.steps if not hasattr(step, "fit_resample")]
    return _without_passthrough(copy.deepcopy(Pipeline(steps)))


def _text_columns(pipeline) -> set[str]:
    """Input columns read as text: those whose sub-pipeline starts with CategoryCaster."""
    from sklearn.compose import ColumnTransformer

    from .cleaning import CategoryCaster

    found: set[str] = set()

    def visit(step) -> None:
        if isinstance(step, ColumnTransformer):
            for _label, transformer, columns in step.transformers_:
                first = transformer.steps[0][1] if hasattr(transformer, "steps") else transformer
                if isinstance(first, CategoryCaster):
                    found.update(str(column) for column in columns)
        for _name, inner in getattr(step, "steps", []) or []:
            visit(inner)

    visit(pipeline)
    return found


def _labels(classes: np.ndarray) -> np.ndarray:
    if classes.dtype.kind in "OUS":
        return np.array([str(label) for label in classes], dtype=object)
    return classes.astype(np.int64)


# --- converters for DeepMed's steps ---------------------------------------------------------------------------------


def _same_shape(tensor_type):
    def shape(operator) -> None:
        rows = operator.inputs[0].get_first_dimension()
        width = sum(variable.type.shape[1] for variable in operator.inputs)
        operator.outputs[0].type = tensor_type([rows, width])

    return shape


def _one_node(build):
    """A converter from `build(fitted step, input, opset, output name) -> node`."""

    def convert(scope, operator, container) -> None:
        node = build(operator.raw_operator, operator.inputs[0], container.target_opset, operator.outputs[0].full_name)
        node.add_to(scope, container)

    return convert


def _to_numeric(step, x, opv, out):
    from onnx import TensorProto
    from skl2onnx.algebra.onnx_ops import OnnxCast

    return OnnxCast(x, to=TensorProto.FLOAT, op_version=opv, output_names=[out])


def _identity(step, x, opv, out):
    from skl2onnx.algebra.onnx_ops import OnnxIdentity

    return OnnxIdentity(x, op_version=opv, output_names=[out])


def _clip(step, x, opv, out):
    from skl2onnx.algebra.onnx_ops import OnnxMax, OnnxMin

    big = np.finfo(np.float32).max
    lower = np.nan_to_num(np.asarray(step.lower_, dtype=np.float32), neginf=-big).reshape(1, -1)
    upper = np.nan_to_num(np.asarray(step.upper_, dtype=np.float32), posinf=big).reshape(1, -1)
    return OnnxMax(OnnxMin(x, upper, op_version=opv), lower, op_version=opv, output_names=[out])


def _zeros_to_missing(step, x, opv, out):
    from skl2onnx.algebra.onnx_ops import OnnxEqual, OnnxWhere

    zero, nan = np.array([0.0], dtype=np.float32), np.array([np.nan], dtype=np.float32)
    return OnnxWhere(OnnxEqual(x, zero, op_version=opv), nan, x, op_version=opv, output_names=[out])


def _select(step, x, opv, out):
    from skl2onnx.algebra.onnx_ops import OnnxGather

    indices = np.flatnonzero(step.get_support()).astype(np.int64)
    return OnnxGather(x, indices, axis=1, op_version=opv, output_names=[out])


def _selector_shape(operator) -> None:
    rows = operator.inputs[0].get_first_dimension()
    kept = int(np.sum(operator.raw_operator.get_support()))
    operator.outputs[0].type = operator.inputs[0].type.__class__([rows, kept])


def _imputer_shape(operator) -> None:
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes

    if isinstance(operator.inputs[0].type, StringTensorType):
        _same_shape(StringTensorType)(operator)
    else:
        calculate_sklearn_imputer_output_shapes(operator)


def _imputer(scope, operator, container) -> None:
    """skl2onnx's own converter for numbers; text columns take "" as missing (string tensors have no NaN)."""
    from skl2onnx.algebra.onnx_ops import OnnxEqual, OnnxWhere
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    if not isinstance(operator.inputs[0].type, StringTensorType):
        convert_sklearn_imputer(scope, operator, container)
        return
    opv, x = container.target_opset, operator.inputs[0]
    fill = np.array([[str(value) for value in operator.raw_operator.statistics_]], dtype=object)
    missing = OnnxEqual(x, np.array([""], dtype=object), op_version=opv)
    OnnxWhere(missing, fill, x, op_version=opv, output_names=[operator.outputs[0].full_name]).add_to(scope, container)


def _classifier_shape(operator) -> None:
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    rows = operator.inputs[0].get_first_dimension()
    classes = np.asarray(operator.raw_operator.classes_)
    label_type = StringTensorType if classes.dtype.kind in "OUS" else Int64TensorType
    operator.outputs[0].type = label_type([rows])
    operator.outputs[1].type = FloatTensorType([rows, len(classes)])


def _constant_like(x, value: float, opv):
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxMul

    zero, constant = np.array([0.0], dtype=np.float32), np.array([value], dtype=np.float32)
    return OnnxAdd(OnnxMul(x, zero, op_version=opv), constant, op_version=opv)


def _isotonic(mapper, x, opv):
    """IsotonicRegression.predict (linear between knots, clipped at the ends) as ONNX operators."""
    from onnx import TensorProto
    from skl2onnx.algebra.onnx_ops import (
        OnnxAdd,
        OnnxCast,
        OnnxClip,
        OnnxDiv,
        OnnxGather,
        OnnxGreaterOrEqual,
        OnnxLess,
        OnnxMul,
        OnnxReduceSumApi11,
        OnnxSub,
        OnnxWhere,
    )

    knots = np.asarray(mapper.X_thresholds_, dtype=np.float32)
    values = np.asarray(mapper.y_thresholds_, dtype=np.float32)
    if len(knots) == 1:
        return _constant_like(x, float(values[0]), opv)
    clipped = OnnxClip(x, np.array(knots[0]), np.array(knots[-1]), op_version=opv)
    if len(knots) == 2:
        segment = OnnxCast(_constant_like(clipped, 0.0, opv), to=TensorProto.INT64, op_version=opv)
    else:  # the segment of x: how many inner knots lie at or below it
        below = OnnxGreaterOrEqual(clipped, knots[1:-1].reshape(1, -1), op_version=opv)
        segment = OnnxReduceSumApi11(OnnxCast(below, to=TensorProto.INT64, op_version=opv), axes=[1], op_version=opv)
    following = OnnxAdd(segment, np.array([1], dtype=np.int64), op_version=opv)
    x0 = OnnxGather(knots, segment, axis=0, op_version=opv)
    x1 = OnnxGather(knots, following, axis=0, op_version=opv)
    y0 = OnnxGather(values, segment, axis=0, op_version=opv)
    y1 = OnnxGather(values, following, axis=0, op_version=opv)
    width = OnnxSub(x1, x0, op_version=opv)
    width = OnnxWhere(
        OnnxLess(width, np.array([1e-12], dtype=np.float32), op_version=opv),
        np.array([1.0], dtype=np.float32),
        width,
        op_version=opv,
    )
    share = OnnxDiv(OnnxSub(clipped, x0, op_version=opv), width, op_version=opv)
    return OnnxAdd(y0, OnnxMul(share, OnnxSub(y1, y0, op_version=opv), op_version=opv), op_version=opv)


def _calibrated_positive(mapping, score, opv):
    """The calibrated probability of classes_[1] from the classifier's (uncalibrated) one."""
    from skl2onnx.algebra.onnx_ops import OnnxAdd, OnnxClip, OnnxDiv, OnnxLog, OnnxMul, OnnxSigmoid, OnnxSub

    if mapping is None:
        return score
    mapper = mapping.maps_[0]
    if isinstance(mapper, float):
        return _constant_like(score, mapper, opv)
    low, high = np.array(_EPS, dtype=np.float32), np.array(1 - _EPS, dtype=np.float32)
    clipped = OnnxClip(score, low, high, op_version=opv)
    one = np.array([1.0], dtype=np.float32)
    logit = OnnxLog(OnnxDiv(clipped, OnnxSub(one, clipped, op_version=opv), op_version=opv), op_version=opv)
    if isinstance(mapper, tuple):
        slope, intercept = (np.array([value], dtype=np.float32) for value in mapper)
        mapped = OnnxSigmoid(OnnxAdd(OnnxMul(logit, slope, op_version=opv), intercept, op_version=opv), op_version=opv)
    else:
        mapped = _isotonic(mapper, logit, opv)
    return OnnxClip(mapped, np.array(0.0, dtype=np.float32), np.array(1.0, dtype=np.float32), op_version=opv)


def _calibrated_classifier(scope, operator, container) -> None:
    """CalibratedThresholdClassifier: the wrapped classifier, its calibration map, then its threshold."""
    from skl2onnx.algebra.onnx_operator import OnnxSubEstimator
    from skl2onnx.algebra.onnx_ops import (
        OnnxArgMax,
        OnnxConcat,
        OnnxGather,
        OnnxGreaterOrEqual,
        OnnxIdentity,
        OnnxReshape,
        OnnxSub,
        OnnxWhere,
    )

    step, opv = operator.raw_operator, container.target_opset
    classes = np.asarray(step.classes_)
    labels = _labels(classes)
    label_out, proba_out = operator.outputs[0].full_name, operator.outputs[1].full_name
    if step.score_method != "predict_proba":
        raise NotImplementedError(f"the classifier's scores come from {step.score_method}, not probabilities")
    if len(classes) != 2 and step.calibration_map is not None:
        raise NotImplementedError("a calibrated multiclass model (one-vs-rest maps) is not translated")
    proba = OnnxSubEstimator(step.estimator, operator.inputs[0], op_version=opv, options={"zipmap": False})[1]
    if len(classes) != 2:
        OnnxIdentity(proba, op_version=opv, output_names=[proba_out]).add_to(scope, container)
        best = OnnxArgMax(proba, axis=1, keepdims=0, op_version=opv)
        OnnxGather(labels, best, axis=0, op_version=opv, output_names=[label_out]).add_to(scope, container)
        return
    score = OnnxGather(proba, np.array([1], dtype=np.int64), axis=1, op_version=opv)
    positive = _calibrated_positive(step.calibration_map, score, opv)
    one = np.array([1.0], dtype=np.float32)
    both = OnnxConcat(
        OnnxSub(one, positive, op_version=opv), positive, axis=1, op_version=opv, output_names=[proba_out]
    )
    both.add_to(scope, container)
    column = list(classes).index(step.positive_label) if step.threshold is not None else 1
    threshold = np.array([0.5 if step.threshold is None else step.threshold], dtype=np.float32)
    chosen = OnnxGather(both, np.array([column], dtype=np.int64), axis=1, op_version=opv)
    flagged = OnnxGreaterOrEqual(chosen, threshold, op_version=opv)
    label = OnnxWhere(flagged, labels[column : column + 1], labels[1 - column : 2 - column], op_version=opv)
    flat = OnnxReshape(label, np.array([-1], dtype=np.int64), op_version=opv, output_names=[label_out])
    flat.add_to(scope, container)


_registered = False


def _register_converters() -> None:
    """Teach skl2onnx DeepMed's steps (once per process)."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.impute import SimpleImputer

    from . import cleaning
    from .calibration import CalibratedThresholdClassifier
    from .selection import FeatureSelector

    numeric = _same_shape(FloatTensorType)
    update_registered_converter(cleaning.ToNumeric, "DeepMedToNumeric", numeric, _one_node(_to_numeric))
    update_registered_converter(cleaning.IQRClipper, "DeepMedIQRClipper", numeric, _one_node(_clip))
    text = _same_shape(StringTensorType)
    update_registered_converter(cleaning.CategoryCaster, "DeepMedCategoryCaster", text, _one_node(_identity))
    if hasattr(cleaning, "ZerosToMissing"):
        zeros = _one_node(_zeros_to_missing)
        update_registered_converter(cleaning.ZerosToMissing, "DeepMedZerosToMissing", numeric, zeros)
    update_registered_converter(FeatureSelector, "DeepMedFeatureSelector", _selector_shape, _one_node(_select))
    update_registered_converter(SimpleImputer, "SklearnImputer", _imputer_shape, _imputer)
    update_registered_converter(
        CalibratedThresholdClassifier, "DeepMedCalibratedThresholdClassifier", _classifier_shape, _calibrated_classifier
    )
    _registered = True


# --- export and check ------------------------------------------------------------------------------------------------


def onnx_feed(X: pd.DataFrame, inputs: dict[str, str]) -> dict[str, np.ndarray]:
    """Rows as the ONNX model's inputs: float32 columns (NaN when missing), string columns ("" when missing)."""
    feed = {}
    for name, kind in inputs.items():
        values = X[name].astype(object).tolist()
        if kind == "string":
            feed[name] = np.array([["" if pd.isna(value) else str(value)] for value in values], dtype=object)
        else:
            numbers = pd.to_numeric(pd.Series([np.nan if pd.isna(v) else float(v) for v in values]), errors="coerce")
            feed[name] = numbers.to_numpy(dtype=np.float32).reshape(-1, 1)
    return feed


def _reason(error: Exception) -> str:
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    if isinstance(error, NotImplementedError):
        return first[:300]
    return f"skl2onnx or ONNX Runtime could not translate a step ({type(error).__name__}: {first[:240]})"


def onnx_export(pipeline, rows: pd.DataFrame) -> OnnxExport:
    """Translate `pipeline` to ONNX and check it on `rows` (validated input rows); see the module docstring."""
    try:
        import onnxruntime
        from skl2onnx import to_onnx
        from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    except ImportError as error:
        return OnnxExport(None, [f"the ONNX libraries are not installed on this server ({error.name})"])
    _register_converters()
    served = _served(pipeline)
    text = _text_columns(served)
    inputs = {str(column): "string" if str(column) in text else "float" for column in rows.columns}
    types = [
        (name, StringTensorType([None, 1]) if kind == "string" else FloatTensorType([None, 1]))
        for name, kind in inputs.items()
    ]
    try:
        content = to_onnx(served, initial_types=types, target_opset=OPSETS).SerializeToString()
        session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])
        labels, probabilities = session.run(None, onnx_feed(rows, inputs))
    except Exception as error:  # noqa: BLE001 - every converter failure is a reason to give, not a crash
        return OnnxExport(None, [_reason(error)])
    expected = pipeline.predict_proba(rows)
    if probabilities.shape != expected.shape:
        return OnnxExport(None, ["the translation gives a different number of classes"])
    gap = float(np.max(np.abs(probabilities - expected))) if len(rows) else 0.0
    if not gap <= TOLERANCE:
        return OnnxExport(None, [f"the translation's probabilities differ from the model's by up to {gap:.4f}"])
    final = pipeline.steps[-1][1]
    clear = np.ones(len(rows), dtype=bool)
    if getattr(final, "threshold", None) is not None and expected.shape[1] == 2:
        column = list(final.classes_).index(final.positive_label)
        clear = np.abs(expected[:, column] - final.threshold) > TOLERANCE
    served_labels = np.asarray(pipeline.predict(rows)).astype(str)
    if not np.array_equal(np.asarray(labels).astype(str)[clear], served_labels[clear]):
        return OnnxExport(None, ["the translation's labels differ from the model's"])
    return OnnxExport(content, [], inputs)


def describe(inputs: dict[str, Any]) -> list[tuple[str, str]]:
    """(column, ONNX input type) pairs for a README."""
    return [(name, "float32 [N, 1]" if kind == "float" else "string [N, 1]") for name, kind in inputs.items()]
