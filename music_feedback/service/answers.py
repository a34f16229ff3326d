"""Validating and recording an answer, shared by the feedback page, the JSON API and the voice API."""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from music_feedback.feedback.port import OptedOutError, Submission, SubmissionConflict, SubmitResult
from music_feedback.policy.contact import REASON_TEXT
from music_feedback.programs.model import Program
from music_feedback.service.blocking import is_busy
from music_feedback.service.deps import ServiceState
from music_feedback.service.errors import ApiError

FIELDS = ("rating", "comment", "tags", "submissionId")
RATINGS = {"up": 1, "down": -1}
log = logging.getLogger(__name__)
SUBMISSION_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


@dataclass(frozen=True)
class Answer:
    rating: int
    comment: str
    tags: tuple[str, ...]
    submission_id: str


def parse(fields: dict[str, list[str]], program: Program) -> Answer:
    """Form or JSON fields (each a list of values) -> an Answer, or a 422 naming the field at fault."""
    extra = sorted(set(fields) - set(FIELDS))
    if extra:
        raise ApiError(422, f"unknown field(s) {extra}: send only {list(FIELDS)}", extra[0])
    for name in ("rating", "submissionId"):
        if not fields.get(name):
            raise ApiError(422, f"{name} is required", name)
        if len(fields[name]) > 1:
            raise ApiError(422, f"{name} was sent more than once", name)
    rating = fields["rating"][0]
    if rating not in RATINGS:
        raise ApiError(422, f"rating must be 'up' or 'down', got {rating[:20]!r}", "rating")
    comments = fields.get("comment") or [""]
    if len(comments) > 1:
        raise ApiError(422, "comment was sent more than once", "comment")
    # A form sends a textarea's line breaks as CRLF, yet the page's maxlength counted each as one character.
    comment, limit = comments[0].replace("\r\n", "\n").strip(), program.feedback.comment_max_length
    if any(ord(c) < 32 and c not in "\n\t" or ord(c) == 127 for c in comment):
        raise ApiError(422, "comment contains control characters; send plain text", "comment")
    if len(comment) > limit:
        raise ApiError(422, f"comment is {len(comment)} characters; at most {limit} are allowed", "comment")
    tags = fields.get("tags") or []
    unknown = [t for t in tags if t not in program.feedback.tags]
    if unknown:
        raise ApiError(422, f"unknown tag(s) {unknown[:5]}; choose from {program.feedback.tags}", "tags")
    if len(set(tags)) != len(tags):
        raise ApiError(422, "a tag was sent more than once", "tags")
    submission_id = fields["submissionId"][0]
    if not SUBMISSION_ID.fullmatch(submission_id):  # not match: "$" also matches before a trailing newline
        raise ApiError(422, "submissionId must be 8-64 letters, digits, '-' or '_'", "submissionId")
    return Answer(RATINGS[rating], comment, tuple(sorted(tags)), submission_id)


def record(st: ServiceState, program: Program, listener_id: int, track_id: int, batch_date: str, channel: str,
           answer: Answer) -> SubmitResult:
    """Store the answer (feedback, event, metrics, ledger in one transaction), then move the candidates: this
    channel's to consumed, other channels' pending ones to cancelled."""
    refused = st.gate(program).may_answer(listener_id)
    if refused:
        raise ApiError(403, f"answer not recorded: {REASON_TEXT[refused]}", "listener")
    sub = Submission(program.program_id, listener_id, track_id, answer.rating, channel, batch_date,
                     answer.submission_id, st.clock.now(), answer.comment, answer.tags)
    try:
        result = st.feedback.submit(sub)
    except OptedOutError as exc:
        raise ApiError(403, str(exc), "listener") from None
    except SubmissionConflict as exc:
        raise ApiError(409, str(exc), "submissionId") from None
    if result.outcome == "created":
        try:
            st.store.set_status(program.program_id, batch_date, [(listener_id, track_id, channel)], "consumed")
            _cancel_pending(st, program, listener_id, track_id, batch_date, channel)
        except Exception as exc:  # the answer is stored: a busy candidate store must not turn it into a 503
            if not is_busy(exc):
                raise
            # The contact policy refuses an answered pair on every channel anyway; the statuses only keep
            # it out of the channels' reads.
            log.warning("answer stored, candidate statuses left as they were (the candidate store is busy): %s",
                        exc)
    return result


def _cancel_pending(st: ServiceState, program: Program, listener_id: int, track_id: int, batch_date: str,
                    channel: str) -> None:
    """An answered pair is never asked again: its pending candidates of every batch and channel are
    cancelled (the contact policy refuses them anyway; this keeps them out of the channels' reads)."""
    rows = [r for r in st.store.for_listener(program.program_id, listener_id, st.clock.datetime())
            if r["track_id"] == track_id and r["status"] == "pending"
            and (r["batch_date"], r["channel"]) != (batch_date, channel)]
    for day in {r["batch_date"] for r in rows}:
        st.store.set_status(program.program_id, day, [(listener_id, track_id, r["channel"]) for r in rows
                                                      if r["batch_date"] == day], "cancelled", expected="pending")
