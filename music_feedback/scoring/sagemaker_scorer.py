"""AWS adapter of the scorer port: SageMaker runtime `invoke_endpoint`, one endpoint per model.

Batches are CSV bodies; one that would pass the real-time payload limit is halved until it fits
(botocore does not check the size). Throttling, 5xx and dropped connections are retried with
backoff by botocore's standard retry mode; a ModelError is not retried and names the endpoint.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import boto3
import numpy as np
import polars as pl
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, PrivateAttr

from music_feedback.scoring.model import TrainedModel
from music_feedback.scoring.scorer import Scorer, ScoringError
from music_feedback.scoring.wire import CSV, JSON, decode_predictions, encode_csv, prepare_frame
from music_feedback.serving.front import MAX_BODY_BYTES


class SageMakerScorer(Scorer):
    region_name: str = Field(default="us-east-1", description=(
        'SageMaker runtime region (AWS_REGION, else AWS_DEFAULT_REGION).'))
    endpoint_url: Optional[str] = Field(default=None, description=(
        'SageMaker runtime URL; None: the real runtime of the region (MUSIC_FEEDBACK_SAGEMAKER_URL).'))
    max_attempts: int = Field(default=5, description=(
        'Attempts in all per invoke_endpoint call, the first included.'))
    max_body_bytes: int = Field(default=MAX_BODY_BYTES, description=(
        'Largest request body; bigger batches are split.'))
    read_timeout_s: float = Field(default=60.0, description=(
        'Read timeout of an invoke_endpoint call, in seconds.'))
    concurrency: int = Field(default=4, description='invoke_endpoint calls in flight at once.')
    _client = PrivateAttr(default=None)

    def client(self):
        if self._client is None:
            config = Config(retries={"mode": "standard", "total_max_attempts": self.max_attempts},
                            read_timeout=self.read_timeout_s, connect_timeout=5,
                            max_pool_connections=max(self.concurrency, 1) * 2)
            self._client = boto3.client("sagemaker-runtime", region_name=self.region_name,
                                        endpoint_url=self.endpoint_url, config=config)
        return self._client

    def predict(self, model: TrainedModel, frame: pl.DataFrame, batch_size: int,
                endpoint: str | None = None) -> np.ndarray:
        if not endpoint:
            raise ScoringError(f"model {model.model_id}: no SageMaker endpoint configured (scoringModels.endpoint)")
        frame = prepare_frame(model, frame, f"the candidates sent to endpoint {endpoint}")
        batches = [frame.slice(i, batch_size) for i in range(0, frame.height, batch_size)]
        if not batches:
            return np.empty(0)
        with ThreadPoolExecutor(max_workers=max(self.concurrency, 1)) as pool:
            parts = list(pool.map(lambda b: self._invoke_fitting(model, b, endpoint), batches))
        return np.concatenate(parts)

    def _invoke_fitting(self, model: TrainedModel, batch: pl.DataFrame, endpoint: str) -> np.ndarray:
        body = encode_csv(batch, model)
        if len(body) <= self.max_body_bytes:
            return self._invoke(model, batch.height, body, endpoint)
        if batch.height == 1:
            raise ScoringError(f"endpoint {endpoint}: one row is {len(body)} bytes, over the "
                               f"{self.max_body_bytes}-byte request limit")
        half = batch.height // 2
        return np.concatenate([self._invoke_fitting(model, batch.slice(0, half), endpoint),
                               self._invoke_fitting(model, batch.slice(half), endpoint)])

    def _invoke(self, model: TrainedModel, rows: int, body: bytes, endpoint: str) -> np.ndarray:
        try:
            answer = self.client().invoke_endpoint(EndpointName=endpoint, Body=body, ContentType=CSV, Accept=JSON)
            payload = answer["Body"].read()
        except ClientError as exc:
            err = exc.response.get("Error", {})
            detail = exc.response.get("OriginalMessage") or err.get("Message", "")
            raise ScoringError(f"endpoint {endpoint} ({model.model_id}): {err.get('Code', 'error')}: "
                               f"{detail}".strip()) from None  # named above
        except BotoCoreError as exc:
            raise ScoringError(f"endpoint {endpoint} ({model.model_id}) is not reachable after "
                               f"{self.max_attempts} attempts: {exc}") from None  # named above
        try:
            proba, version = decode_predictions(payload, rows, f"endpoint {endpoint}")
        except ValueError as exc:
            raise ScoringError(str(exc)) from None  # named above
        if version != model.version:
            raise ScoringError(f"endpoint {endpoint} serves {version}, but the model to score with is "
                               f"{model.version}: deploy that version to the endpoint")
        return proba
