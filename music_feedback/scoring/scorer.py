"""The scorer port: send feature batches to a model, get probabilities back."""
from __future__ import annotations

import numpy as np
import polars as pl
from dagster import ConfigurableResource

from music_feedback.scoring.model import TrainedModel
from music_feedback.scoring.threads import one_thread
from music_feedback.scoring.wire import prepare_frame


class ScoringError(RuntimeError):
    """A model or endpoint that could not score; the message names it."""


class Scorer(ConfigurableResource):
    def predict_batch(self, model: TrainedModel, batch: pl.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def predict(self, model: TrainedModel, frame: pl.DataFrame, batch_size: int,
                endpoint: str | None = None) -> np.ndarray:
        """Score in batches of `batch_size` rows, as an endpoint is called."""
        with one_thread():
            parts = [self.predict_batch(model, frame.slice(i, batch_size)) for i in range(0, frame.height, batch_size)]
        return np.concatenate(parts) if parts else np.empty(0)


class InProcessScorer(Scorer):
    """Embedded adapter: the trained model runs in this process, through the model server's own code."""

    def predict(self, model: TrainedModel, frame: pl.DataFrame, batch_size: int,
                endpoint: str | None = None) -> np.ndarray:
        """The whole frame in one call, on every core. `batch_size` is how an endpoint is called; in process
        each batch only adds a call's overhead (200K rows: ~0.6 s a model in 2,000-row batches on one thread,
        ~0.2 s at once on two). A row's score does not depend on its batch."""
        return self.predict_batch(model, frame) if frame.height else np.empty(0)

    def predict_batch(self, model: TrainedModel, batch: pl.DataFrame) -> np.ndarray:
        return model.predict(prepare_frame(model, batch, "the candidates"))
