"""The serving API: GetCandidatesForChannel, a listener's pending candidates, a track's candidates."""
from __future__ import annotations

import re
from datetime import date
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from music_feedback.service import contract, paging
from music_feedback.service.config import MAX_LIMIT
from music_feedback.service.deps import readable_program, require_key, state
from music_feedback.service.errors import ApiError
from music_feedback.service.schemas import ChannelPage, ListenerCandidates, TrackCandidates
from music_feedback.store.base import DEFAULT_STATUS, serving_item

ERRORS = contract.errors(401, 404, *contract.LIMITED)
router = APIRouter(prefix="/v1/programs/{program}", tags=["candidates"], dependencies=[Depends(require_key)],
                   responses=ERRORS)
LISTENER_ID = re.compile(rb'"listener_id":\s*(\d+)')  # in a page's serialised items
ProgramId = Annotated[str, Path(min_length=1, max_length=128, description="programId")]
Marketplace = Annotated[str | None, Query(min_length=2, max_length=8, pattern=r"^[A-Z]{2,8}$",
                                          description="only this marketplace (one of the program's)")]


async def _call(request: Request, fn, *args):
    """Store calls: inline for an embedded store (sub-millisecond, no thread hop), else on the pool."""
    if state(request).store.reads_block:
        return await run_in_threadpool(fn, *args)
    return fn(*args)


def _json(payload: dict) -> Response:
    # Pages hold up to 1,000 rows (~450 KB): serialised once by orjson (10x the stdlib), without a
    # response-model round trip.
    return Response(orjson.dumps(payload), media_type="application/json")


def _unsuppressed_page(st, *args) -> paging.Page:
    """A page without the candidates of listeners who unsubscribed since their batch was stored: an
    unsubscribe takes effect at once. The page may then be short; nextCursor still says whether more come."""
    page = paging.channel_page(st, *args)
    ids = [int(LISTENER_ID.search(item).group(1)) for item in page.items]
    gone = st.feedback.suppressed(set(ids)) if ids else set()
    if gone:
        page.items = [item for item, lid in zip(page.items, ids) if lid not in gone]
    return page


def _unsuppressed_listener(st, program: str, listener: int) -> list[dict]:
    if st.feedback.suppressed([listener]):
        return []
    return st.store.for_listener(program, listener, st.clock.datetime())


@router.get("/channels/{channel}/candidates", response_model=ChannelPage,
            responses=contract.REQUEST_LINE_TOO_LONG,
            summary="GetCandidatesForChannel: a channel's best pending candidates, in pages")
async def channel_candidates(
    request: Request,
    program: ProgramId,
    channel: Annotated[str, Path(min_length=1, max_length=64, description="channelId, e.g. email")],
    min_score: Annotated[float, Query(alias="minScore", ge=0.0, le=1.0, allow_inf_nan=False,
                                      description="lowest score returned")] = 0.0,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="rows over all pages")] = MAX_LIMIT,
    marketplace: Marketplace = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=16_384,
                                        description="nextCursor of the previous page, with the same parameters")] = None,
) -> Response:
    prog = readable_program(request, program)
    if channel not in {c.channel_id for c in prog.enabled_channels()}:
        raise ApiError(404, f"program {program!r} has no enabled channel {channel!r}; "
                            f"known: {[c.channel_id for c in prog.enabled_channels()]}", "channel")
    if marketplace is not None and marketplace not in prog.marketplaces:
        raise ApiError(422, f"marketplace: {marketplace!r} is not one of the program's {prog.marketplaces}",
                       "marketplace")
    st = state(request)
    result = await _call(request, _unsuppressed_page, st, program, channel, min_score, limit, marketplace, cursor)
    head = orjson.dumps({"program": program, "channel": channel, "count": len(result.items)})[:-1]
    body = b"".join((head, b',"items":[', b",".join(result.items), b'],"nextCursor":',
                     orjson.dumps(result.next_cursor), b"}"))
    return Response(body, media_type="application/json")


@router.get("/listeners/{listener}/candidates", response_model=ListenerCandidates,
            summary="A listener's pending candidates (the voice channel's lookup)")
async def listener_candidates(
    request: Request, program: ProgramId,
    listener: Annotated[int, Path(ge=0, le=2**63 - 1, description="listener id")],
    channel: Annotated[str | None, Query(min_length=1, max_length=64,
                                         description="only this channel, e.g. voice-assistant")] = None,
) -> Response:
    readable_program(request, program)
    st = state(request)
    rows = await _call(request, _unsuppressed_listener, st, program, listener)
    items = [serving_item(r) for r in rows if r["status"] == DEFAULT_STATUS and channel in (None, r["channel"])]
    return _json({"program": program, "listener": listener, "count": len(items), "items": items})


@router.get("/tracks/{track}/candidates", response_model=TrackCandidates,
            summary="A track's candidates in one batch")
async def track_candidates(
    request: Request, program: ProgramId,
    track: Annotated[int, Path(ge=0, le=2**63 - 1, description="track id")],
    batch_date: Annotated[date, Query(alias="date", description="batch date, YYYY-MM-DD")],
) -> Response:
    readable_program(request, program)
    rows = await _call(request, state(request).store.for_track, program, track, batch_date.isoformat())
    items = [serving_item(r) for r in rows]
    return _json({"program": program, "track": track, "date": batch_date.isoformat(), "count": len(items),
                  "items": items})
