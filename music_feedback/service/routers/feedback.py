"""The feedback page (`/f/{token}`: a form that works without JavaScript) and its JSON twin
(`POST /v1/feedback`). A GET only shows; mail scanners prefetch links, so only a POST records."""
from __future__ import annotations

import json
import secrets
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from music_feedback.delivery.links import LinkClaims, TokenError
from music_feedback.programs.model import Program
from music_feedback.service import answers, blocking, contract, pages, ratelimit
from music_feedback.service.deps import ServiceState, state
from music_feedback.service.errors import ApiError
from music_feedback.service.schemas import FeedbackResult
from music_feedback.service.limits import MAX_BODY_BYTES

router = APIRouter(tags=["feedback"])
Token = Annotated[str, Path(min_length=10, max_length=1024, description="the signed link token")]
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_BODY = MAX_BODY_BYTES  # BodyLimit enforces it while reading; the checks here only name it


def _claims(st: ServiceState, token: str, purpose: str = "feedback") -> tuple[LinkClaims, Program]:
    try:
        claims = st.links.verify(token, purpose, now=st.clock.now())
    except TokenError as exc:
        raise ApiError(exc.status, str(exc), "token") from None
    program = st.programs.get(claims.program_id)
    if program is None:
        raise ApiError(404, f"program {claims.program_id!r} is not served here", "token")
    return claims, program


def _form_context(st: ServiceState, claims: LinkClaims, program: Program) -> dict:
    row = st.feedback.ledger_row(program.program_id, claims.batch_date, claims.listener_id, claims.track_id,
                                 claims.channel) or {}
    prior = st.feedback.feedback(program.program_id, claims.listener_id, claims.track_id) or {}
    return {"title": f"Feedback: {row.get('track_name') or 'a new track'}", "program_name": program.program_name,
            "track_name": row.get("track_name") or f"track {claims.track_id}", "genre": row.get("genre") or "new music",
            "vocabulary": program.feedback.tags, "max_comment": program.feedback.comment_max_length,
            "rating": prior.get("rating"), "tags": prior.get("tags", []), "comment": prior.get("comment", ""),
            "answered": bool(prior), "submission_id": secrets.token_urlsafe(16)}


@router.get("/f/{token}", summary="The feedback form, pre-filled (shows only; changes nothing)",
            response_class=Response, responses={**contract.page("the form"),
                                                **contract.errors(*contract.LIMITED, pages=(400, 403, 404, 410))})
async def feedback_form(request: Request, token: Token) -> Response:
    st = state(request)
    try:
        claims, program = _claims(st, token)
    except ApiError as exc:
        return pages.message("This link does not work", exc.message, exc.status)
    context = await blocking.read(request, _form_context, st, claims, program)
    return pages.page("feedback.html.j2", action=f"/f/{token}", **context)


async def _form_fields(request: Request) -> dict[str, list[str]]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in FORM_TYPES:
        raise ApiError(415, f"send the form as {FORM_TYPES[0]} or {FORM_TYPES[1]}, not {kind or 'no content type'}",
                       "content-type")
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        raise ApiError(413, f"the form is larger than {MAX_BODY} bytes", "body")
    try:
        form = await request.form(max_files=0, max_fields=64)
    except Exception as exc:  # the multipart parser's own errors: a body that is not a form
        raise ApiError(400, f"the body is not a valid form: {exc}", "body") from None
    fields: dict[str, list[str]] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            raise ApiError(422, f"field {name!r} must not be a file", name)
        fields.setdefault(name, []).append(value)
    return fields


@router.post("/f/{token}", summary="Submit the feedback form", response_class=Response,
             responses={**contract.page("thank you (or the form again, naming the problem)"),
                        **contract.errors(*contract.LIMITED, pages=(400, 403, 404, 409, 410, 413, 415, 422))})
async def submit_form(request: Request, token: Token) -> Response:
    st = state(request)
    try:
        claims, program = _claims(st, token)
    except ApiError as exc:
        return pages.message("This link does not work", exc.message, exc.status)
    fields: dict[str, list[str]] = {}
    try:
        fields = await _form_fields(request)
        answer = answers.parse(fields, program)
        result = await blocking.write(request, answers.record, st, program, claims.listener_id, claims.track_id,
                                      claims.batch_date, claims.channel, answer)
    except ApiError as exc:
        if exc.status in (403, 409, 413, 415, 400):
            return pages.message("Your feedback was not saved", exc.message, exc.status)
        context = await blocking.read(request, _form_context, st, claims, program)
        sent = {"rating": answers.RATINGS.get((fields.get("rating") or [""])[0]),  # what they sent, not lost
                "tags": fields.get("tags", []), "comment": (fields.get("comment") or [""])[0]}
        return pages.page("feedback.html.j2", exc.status, action=f"/f/{token}",
                          **{**context, **{k: v for k, v in sent.items() if v}, "error": exc.message})
    verb = {"created": "saved", "updated": "updated", "unchanged": "already saved"}[result.outcome]
    return pages.message("Thank you!", f"Your feedback is {verb}. It helps shape the new-music playlists.",
                         comment=answer.comment)


class FeedbackBody(BaseModel):
    """Documents the JSON body; the handler parses it itself to name every problem in its own words."""
    token: str = Field(min_length=10, max_length=1024, description="the token of the feedback link")
    rating: Literal["up", "down"]
    submissionId: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$", description="the client's id: a retry is a no-op")
    comment: str = Field("", max_length=200)
    tags: list[str] = Field(default_factory=list, description="genre tags from the program's vocabulary")


@router.post("/v1/feedback", summary="Submit feedback as JSON with the link's token",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/json": {"schema": FeedbackBody.model_json_schema()}}}},
             responses={200: {"model": FeedbackResult, "description": "stored (or already stored)"},
                        **contract.errors(400, 403, 404, 409, 410, 413, 415, *contract.LIMITED)})
async def submit_json(request: Request) -> dict:
    st = state(request)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ApiError(415, f"send application/json, not {kind or 'no content type'}", "content-type")
    body = await request.body()
    if len(body) > MAX_BODY:
        raise ApiError(413, f"the body is larger than {MAX_BODY} bytes", "body")
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"the body is not valid JSON: {exc}", "body") from None
    if not isinstance(data, dict):
        raise ApiError(422, "the body must be a JSON object", "body")
    token = data.pop("token", None)
    if not isinstance(token, str):
        raise ApiError(422, "token is required (the token of the feedback link)", "token")
    claims, program = _claims(st, token)
    ratelimit.limiter(request.app).token(token)  # a path's token counts in TokenRateLimit; this one is the body's
    fields = {}
    for name, value in data.items():
        if name == "tags":
            if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
                raise ApiError(422, "tags must be a list of strings", "tags")
            fields[name] = value
        elif isinstance(value, str):
            fields[name] = [value]
        else:
            raise ApiError(422, f"{name} must be a string", name)
    answer = answers.parse(fields, program)
    result = await blocking.write(request, answers.record, st, program, claims.listener_id, claims.track_id,
                                  claims.batch_date, claims.channel, answer)
    fb = result.feedback
    return {"outcome": result.outcome, "programId": program.program_id, "listenerId": claims.listener_id,
            "trackId": claims.track_id, "rating": "up" if fb["rating"] > 0 else "down", "comment": fb["comment"],
            "tags": fb["tags"], "submittedAt": fb["submitted_at"], "deliveredAt": fb["delivered_at"]}
