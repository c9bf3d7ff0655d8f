"""deepmed_runtime: use a downloaded DeepMed model without DeepMed.

This file is not imported by DeepMed: `modelhub.hub.model_download_zip` copies it into every tabular model's ZIP as
`deepmed_runtime/__init__.py`, beside `deepmed_runtime/tabular_ml/`, copies of the few DeepMed modules the pickled
pipeline refers to (its calibrated classifier, cleaning transformers, feature selector) and the input-schema checks.
Those modules use only the libraries the ZIP's README pins. Importing this package makes the pickle's references
(`tabular.ml.<module>`) resolve to the copies, so `pipeline.joblib` loads with no DeepMed installed:

    import sys; sys.path.insert(0, "path/to/the/unzipped/folder")
    import deepmed_runtime
    model = deepmed_runtime.load("path/to/the/unzipped/folder")
    model.predict_proba([{"age": 63, "smoker": "yes"}])   # a DataFrame, one column per class
    model.predict([{"age": 63, "smoker": "yes"}])         # labels, with the model's threshold

or from a shell, a CSV in and a CSV out: `python -m deepmed_runtime patients.csv > predictions.csv`.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
import types
from pathlib import Path
from typing import Any

__all__ = ["Model", "load"]

_HERE = Path(__file__).resolve().parent
_PACKAGE = "tabular_ml"


def _install_aliases() -> None:
    """Make `tabular.ml.<name>` (the pickle's references) the shipped copies, unless a real DeepMed is imported."""
    package = importlib.import_module(f"{__name__}.{_PACKAGE}")
    if "tabular" not in sys.modules:
        shim = types.ModuleType("tabular", "Stand-in for DeepMed's tabular app, provided by deepmed_runtime.")
        shim.__path__ = []  # a package, so `tabular.ml` can be found below it
        sys.modules["tabular"] = shim
    sys.modules.setdefault("tabular.ml", package)
    sys.modules["tabular"].ml = sys.modules["tabular.ml"]
    for source in sorted((_HERE / _PACKAGE).glob("*.py")):
        if source.stem == "__init__":
            continue
        module = importlib.import_module(f"{__name__}.{_PACKAGE}.{source.stem}")
        sys.modules.setdefault(f"tabular.ml.{source.stem}", module)


_install_aliases()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Model:
    """A loaded model: its pipeline, the input schema it checks rows against, its labels and threshold."""

    def __init__(self, folder: str | Path = ".") -> None:
        import joblib

        folder = Path(folder)
        self.info: dict[str, Any] = json.loads((folder / "schema.json").read_text(encoding="utf-8"))
        manifest = json.loads((folder / "checksums.json").read_text(encoding="utf-8"))
        pipeline_path = folder / "pipeline.joblib"
        # joblib runs pickled code: refuse a file that is not the one DeepMed wrote into this ZIP.
        if _sha256(pipeline_path) != manifest["pipeline.joblib"]:
            raise ValueError("pipeline.joblib does not match its SHA-256 in checksums.json: it will not be loaded.")
        self.pipeline = joblib.load(pipeline_path)
        schema_module = importlib.import_module(f"{__name__}.{_PACKAGE}.schema")
        self._schema = schema_module.InputSchema.from_dict({"columns": self.info["columns"]})
        self._validate = schema_module.validate_rows
        self.target = self.info.get("target")
        self.threshold = self.info.get("threshold")
        self.positive_label = self.info.get("positive_label")

    @property
    def columns(self) -> list[str]:
        return self._schema.names

    def rows(self, rows) -> Any:
        """Rows (a DataFrame, or a list of {column: value}) checked and converted as DeepMed does before predicting.

        Raises ValueError naming the row and column of a value of the wrong type, or the missing columns.
        """
        import pandas as pd

        frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
        clean, _ignored = self._validate(self._schema, frame)
        return clean

    def predict_proba(self, rows) -> Any:
        """Calibrated class probabilities, one column per class (the model's `classes_`)."""
        import pandas as pd

        classes = [str(label) for label in self.pipeline.classes_]
        return pd.DataFrame(self.pipeline.predict_proba(self.rows(rows)), columns=classes)

    def predict(self, rows) -> list[Any]:
        """Labels; a two-class model flags the positive class from its threshold, as DeepMed does."""
        return [label.item() if hasattr(label, "item") else label for label in self.pipeline.predict(self.rows(rows))]


def load(folder: str | Path = ".") -> Model:
    """Load the model unzipped in `folder` (pipeline.joblib, schema.json, checksums.json)."""
    return Model(folder)


def _main(argv: list[str]) -> int:
    import pandas as pd

    if len(argv) != 1:
        print("usage: python -m deepmed_runtime patients.csv > predictions.csv", file=sys.stderr)
        return 2
    model = load(_HERE.parent)
    frame = pd.read_csv(argv[0])
    probabilities = model.predict_proba(frame)
    out = frame.copy()
    out["predicted_label"] = model.predict(frame)
    for column in probabilities.columns:
        out[f"probability_{column}"] = probabilities[column].to_numpy()
    out.to_csv(sys.stdout, index=False)
    return 0
