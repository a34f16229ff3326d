"""The body format between a scorer and a model server: CSV or JSON rows of feature values in,
JSON probabilities out. One module for both sides, so the in-process and endpoint paths cannot drift."""
from __future__ import annotations

import io
import json

import numpy as np
import polars as pl

from music_feedback.scoring.features import CATEGORICAL
from music_feedback.scoring.model import TrainedModel, model_columns
from music_feedback.scoring.threads import one_thread

CSV = "text/csv"
JSON = "application/json"


class BadRequest(ValueError):
    """A body the model cannot score; the message names the model and what to fix."""


def encode_csv(frame: pl.DataFrame, model: TrainedModel | None = None, columns: list[str] | None = None) -> bytes:
    cols = columns or model_columns(model.features)
    return frame.select(cols).write_csv().encode()


def _schema(columns: list[str]) -> dict:
    return {c: (pl.String if c in CATEGORICAL else pl.Float64) for c in columns}


def decode_body(model: TrainedModel, body: bytes, content_type: str) -> pl.DataFrame:
    """Rows to score. CSV needs a header row; JSON is {"instances": [{feature: value}, ...]} or a list."""
    cols = model_columns(model.features)
    kind = (content_type or "").split(";")[0].strip().lower()
    try:
        if kind == CSV:
            frame = pl.read_csv(io.BytesIO(body), schema_overrides=_schema(cols), infer_schema_length=0) \
                if body.strip() else pl.DataFrame()
        elif kind == JSON:
            doc = json.loads(body or b"null")
            rows = doc.get("instances") if isinstance(doc, dict) else doc
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise BadRequest(f"model {model.model_id}: JSON body must be {{\"instances\": [{{feature: value}}]}}")
            frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
        else:
            raise BadRequest(f"model {model.model_id}: content type {content_type!r} is not supported; "
                             f"send {CSV} (with a header row) or {JSON}")
    except BadRequest:
        raise
    except Exception as exc:
        raise BadRequest(f"model {model.model_id}: cannot parse the {kind} body ({exc})") from exc
    if frame.width == 0:  # an empty body: nothing to score
        return pl.DataFrame(schema=_schema(cols))
    return prepare_frame(model, frame, "the request")


def prepare_frame(model: TrainedModel, frame: pl.DataFrame, where: str) -> pl.DataFrame:
    """The model's feature columns, typed; both scorers and the model server go through here."""
    cols = model_columns(model.features)
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise BadRequest(f"model {model.model_id}: feature column(s) {missing} missing from {where}; "
                         f"it needs {cols}")
    try:
        return frame.select(pl.col(c).cast(t) for c, t in _schema(cols).items())
    except Exception as exc:
        raise BadRequest(f"model {model.model_id}: a feature value has the wrong type ({exc})") from exc


def encode_predictions(model: TrainedModel, proba: np.ndarray) -> bytes:
    return json.dumps({"model_version": model.version, "predictions": proba.tolist()}).encode()


def decode_predictions(body: bytes, rows: int, source: str) -> tuple[np.ndarray, str]:
    """Probabilities and the serving model's version; anything else is an error naming `source`."""
    try:
        doc = json.loads(body)
        proba = np.asarray(doc["predictions"], dtype=np.float64)
        version = str(doc["model_version"])
    except Exception as exc:
        raise ValueError(f"{source} answered something that is not a prediction list "
                         f"({type(exc).__name__}: {body[:80]!r})") from exc
    if proba.shape != (rows,):
        raise ValueError(f"{source} answered {proba.size} predictions for {rows} rows")
    if not np.all((proba >= 0.0) & (proba <= 1.0)):
        raise ValueError(f"{source} answered predictions outside [0, 1]")
    return proba, version


def predict_body(model: TrainedModel, body: bytes, content_type: str) -> bytes:
    """What the model server does for one request, and the in-process scorer for one batch."""
    frame = decode_body(model, body, content_type)
    with one_thread():
        proba = model.predict(frame) if frame.height else np.empty(0)
    return encode_predictions(model, proba)
