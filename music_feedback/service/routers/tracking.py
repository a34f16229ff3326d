"""Open and click tracking, recorded as events. The click redirect only goes to this service's own
pages, so a signed link can never be turned into an open redirect."""
from __future__ import annotations

import base64
import re
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from music_feedback.delivery.links import TokenError
from music_feedback.service import blocking, contract
from music_feedback.service.deps import state
from music_feedback.service.errors import ApiError
from music_feedback.service.head import is_head

router = APIRouter(tags=["tracking"])
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
OWN_PAGE = re.compile(r"^/(f|u)/[A-Za-z0-9._-]{10,1024}$")
# Mail privacy proxies fetch every image on delivery: such opens are kept, and flagged as likely machine.
MACHINE_AGENTS = ("googleimageproxy", "ggpht.com", "yahoomailproxy", "bot", "crawler", "scanner", "proofpoint",
                  "mimecast", "barracuda", "safelinks")


async def _event(request: Request, token: str, purpose: str, **extra) -> None:
    st = state(request)
    try:
        claims = st.links.verify(token, purpose, now=st.clock.now())
    except TokenError as exc:
        raise ApiError(exc.status, str(exc), "token") from None
    if is_head(request):
        return  # a HEAD (a link checker's probe) answers as the GET would, and records nothing
    agent = request.headers.get("user-agent", "")[:200]
    await blocking.write(request, st.feedback.record_event, claims.program_id, purpose, {
        "listener_id": claims.listener_id, "track_id": claims.track_id, "batch_date": claims.batch_date,
        "channel": claims.channel, "user_agent": agent,
        "likely_machine": any(m in agent.lower() for m in MACHINE_AGENTS) or not agent, **extra}, st.clock.now())


@router.get("/o/{token}.gif", summary="Open-tracking pixel", response_class=Response,
            responses={200: {"description": "a 1x1 GIF", "content": {"image/gif": {}}},
                       **contract.errors(400, 403, 410, *contract.LIMITED)})
async def open_pixel(request: Request, token: Annotated[str, Path(min_length=10, max_length=1024)]) -> Response:
    await _event(request, token, "open")
    return Response(PIXEL, media_type="image/gif", headers={"Cache-Control": "no-store"})


@router.get("/c/{token}", summary="Click tracking: records the click, then redirects to one of our pages",
            response_class=RedirectResponse, status_code=303,
            responses={303: {"description": "to the page named by `to`"},
                       **contract.errors(400, 403, 410, *contract.LIMITED)})
async def click(request: Request, token: Annotated[str, Path(min_length=10, max_length=1024)],
                to: Annotated[str, Query(min_length=1, max_length=1100,
                                         description="a path on this service: /f/{token} or /u/{token}")]):
    if not OWN_PAGE.fullmatch(to):  # not match: its "$" also matches before a trailing newline
        raise ApiError(400, "to must be a feedback (/f/...) or unsubscribe (/u/...) path on this service", "to")
    await _event(request, token, "click", to=to[:3])
    return RedirectResponse(to, status_code=303)
