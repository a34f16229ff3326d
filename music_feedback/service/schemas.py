"""Response shapes, for the OpenAPI document (pages are serialised directly, see routers/candidates.py)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    error: str = Field(description="a short code: unauthorized, forbidden, not_found, invalid_parameter")
    message: str = Field(description="what went wrong and what to fix")
    parameter: str | None = Field(default=None, description="the parameter at fault")
    detail: list[dict] | None = Field(default=None, description="a validation error: each problem, "
                                                                "{parameter, message}")


class Candidate(BaseModel):
    listener_id: int
    track_id: int
    channel: str
    score: float = Field(ge=0, le=1)
    propensity_score: float | None
    affinity_score: float | None
    marketplace: str | None
    genre: str | None
    time_zone: str | None
    track_name: str | None
    artist_id: int | None
    propensity_model_version: str | None
    affinity_model_version: str | None
    expires_at: int = Field(description="epoch seconds")
    batch_date: str
    status: str


class ChannelPage(BaseModel):
    program: str
    channel: str
    count: int
    items: list[Candidate]
    nextCursor: str | None = Field(description="pass it back as `cursor`, with the same parameters, for the next "
                                               "page; null on the last page")


class ListenerCandidates(BaseModel):
    program: str
    listener: int
    count: int
    items: list[Candidate]


class TrackCandidates(BaseModel):
    program: str
    track: int
    date: str
    count: int
    items: list[Candidate]


class FeedbackResult(BaseModel):
    """POST /v1/feedback's answer: the stored answer of (program, listener, track)."""
    outcome: Literal["created", "updated", "unchanged"]
    programId: str
    listenerId: int
    trackId: int
    rating: Literal["up", "down"]
    comment: str
    tags: list[str]
    submittedAt: float = Field(description="epoch seconds")
    deliveredAt: float | None = Field(description="epoch seconds the request was delivered; null if unknown")
