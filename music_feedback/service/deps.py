"""What routes share: the service state on app.state, API-key checks and program lookup."""
from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from music_feedback.clock import SYSTEM, Clock
from music_feedback.delivery.links import LinkSigner
from music_feedback.feedback.port import FeedbackStore
from music_feedback.policy.gate import ContactGate

from music_feedback.programs.model import Program
from music_feedback.service.auth import ApiKey
from music_feedback.service.config import ServiceConfig
from music_feedback.service.cursor import CursorSigner
from music_feedback.service.errors import ApiError
from music_feedback.service.metrics import Metrics
from music_feedback.store.base import CandidateStore
from music_feedback.warehouse.port import Warehouse


@dataclass
class ServiceState:
    config: ServiceConfig
    store: CandidateStore
    programs: dict[str, Program]
    signer: CursorSigner
    metrics: Metrics
    feedback: "FeedbackStore"
    links: "LinkSigner"
    clock: Clock = SYSTEM  # every time the service stamps or compares
    warehouse: "Warehouse | None" = None  # the contact policy's opt-out, trust and earlier requests

    def gate(self, program: Program) -> ContactGate:
        """The contact policy for `program`, on this service's stores."""
        return ContactGate(program, self.warehouse, self.feedback)


def state(request: Request) -> ServiceState:
    return request.app.state.service


async def require_key(request: Request) -> ApiKey:
    """Router-level dependency: runs before parameter validation, so a caller without a key learns nothing.
    Async because it never blocks: a plain def would cost every request a hop to the thread pool."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    key = state(request).config.api_keys.authenticate(token.strip()) if scheme.lower() == "bearer" else None
    if key is None:
        raise ApiError(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    request.state.api_key = key
    request.app.state.rate_limiter.api_key(key.name)  # 429 past the key's rate limit
    return key


def readable_program(request: Request, program: str) -> Program:
    """The path's program, or 404 when it is unknown or the caller's key may not read it: the same answer,
    naming no other program, so a key learns nothing of the programs it may not read."""
    found = state(request).programs.get(program)
    key: ApiKey | None = getattr(request.state, "api_key", None)
    if found is None or key is None or not key.may_read(program):
        raise ApiError(404, f"unknown program {program[:128]!r} (or not one this API key may read)", "program")
    return found
