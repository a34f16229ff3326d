"""The voice assistant's API. After a track ends the assistant asks whether to prompt the listener; the
answer is yes when a pending voice candidate exists and the contact policy allows it now (the same rules
as every channel: opt-out, suppression, trust, holdout, answered pairs, the weekly cap across channels). The spoken yes/no is recorded at once as thumbs up/down."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from music_feedback.policy.contact import REASON_TEXT
from music_feedback.service import answers, contract
from music_feedback.service.deps import readable_program, require_key, state
from music_feedback.service.errors import ApiError

router = APIRouter(prefix="/v1/programs/{program}/listeners/{listener}", tags=["voice"],
                   dependencies=[Depends(require_key)],
                   responses=contract.errors(401, 404, *contract.LIMITED))
Listener = Annotated[int, Path(ge=1, le=2**62, description="listener id")]


class VoicePrompt(BaseModel):
    ask: bool
    reason: str
    prompt: str | None = None
    responseOptions: list[str] = []
    batchDate: str | None = None


class VoiceAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    trackId: int = Field(ge=1, le=2**62)
    answer: Literal["yes", "no"]
    submissionId: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")


def _voice(program):
    channel = program.channel("voice")
    if channel is None:
        raise ApiError(404, f"program {program.program_id!r} has no enabled voice channel", "program")
    return channel


@router.get("/voice-prompt", response_model=VoicePrompt, summary="Should the assistant ask about this track?")
def voice_prompt(request: Request, program: str, listener: Listener,
                 track: Annotated[int, Query(ge=1, le=2**62, description="the track that just ended")]
                 ) -> VoicePrompt:
    """A plain def: the store and the warehouse are read off the event loop, on the thread pool."""
    st, prog = state(request), readable_program(request, program)
    channel = _voice(prog)
    now = st.clock.now()
    pending = [r for r in st.store.for_listener(prog.program_id, listener, st.clock.datetime())
               if r["track_id"] == track and r["channel"] == channel.channel_id and r["status"] == "pending"]
    if not pending:
        return VoicePrompt(ask=False, reason="no pending request for this track")
    row = pending[0]  # the newest batch's
    existing = st.feedback.ledger_row(prog.program_id, row["batch_date"], listener, track, channel.channel_id)
    if existing is not None and existing["state"] != "sent":
        return VoicePrompt(ask=False, reason=f"request is {existing['state']}")
    refused = st.gate(prog).contact_now(row, row["batch_date"], channel.channel_id, now,
                                        contacted=existing is not None)
    if refused:
        return VoicePrompt(ask=False, reason=f"{refused}: {REASON_TEXT[refused]}")
    config = channel.typed_config()
    return VoicePrompt(ask=True, reason="pending request", prompt=config.prompt.replace("{trackName}", row["track_name"]
                                                                                      or f"track {track}"),
                       responseOptions=config.response_options, batchDate=row["batch_date"])


@router.post("/voice-answers", summary="Record the listener's spoken yes (thumbs up) or no (thumbs down)",
             responses=contract.errors(400, 403, 409, 413))
def voice_answer(request: Request, program: str, listener: Listener, body: VoiceAnswer) -> dict:
    st, prog = state(request), readable_program(request, program)
    channel = _voice(prog)
    asked = [r for r in st.store.for_listener(prog.program_id, listener, st.clock.datetime())
             if r["track_id"] == body.trackId and r["channel"] == channel.channel_id]
    row = next((r for r in asked if (st.feedback.ledger_row(prog.program_id, r["batch_date"], listener, body.trackId,
                                                            channel.channel_id) or {}).get("state") == "sent"), None)
    if row is None:
        raise ApiError(409, f"listener {listener} was not prompted about track {body.trackId}: ask "
                            "GET .../voice-prompt first", "trackId")
    answer = answers.Answer(1 if body.answer == "yes" else -1, "", (), body.submissionId)
    result = answers.record(st, prog, listener, body.trackId, row["batch_date"], channel.channel_id, answer)
    return {"outcome": result.outcome, "rating": "up" if body.answer == "yes" else "down",
            "batchDate": row["batch_date"]}
