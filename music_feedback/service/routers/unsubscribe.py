"""Unsubscribe: GET shows a confirmation page; POST (the page's button, or a mail client's RFC 8058
one-click POST with List-Unsubscribe=One-Click) opts the listener out of every program at once."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from music_feedback.delivery.links import TokenError
from music_feedback.service import blocking, contract, pages
from music_feedback.service.deps import state

router = APIRouter(tags=["unsubscribe"])
Token = Annotated[str, Path(min_length=10, max_length=1024)]


@router.get("/u/{token}", summary="Unsubscribe confirmation page (changes nothing)", response_class=Response,
            responses={**contract.page("the confirmation page"), **contract.errors(422, 429, pages=(400, 403, 410))})
async def unsubscribe_page(request: Request, token: Token) -> Response:
    try:
        state(request).links.verify(token, "unsubscribe", now=state(request).clock.now())
    except TokenError as exc:
        return pages.message("This link does not work", str(exc), exc.status)
    return pages.message("Unsubscribe from feedback requests?",
                         "You will get no more requests for feedback on new tracks, from any of our programs.",
                         form_action=f"/u/{token}", button="Unsubscribe")


@router.post("/u/{token}", summary="Unsubscribe now (RFC 8058 one-click)", response_class=Response,
             responses={**contract.page("unsubscribed"), **contract.errors(413, *contract.LIMITED,
                                                                           pages=(400, 403, 410))})
async def unsubscribe(request: Request, token: Token) -> Response:
    st = state(request)
    try:
        claims = st.links.verify(token, "unsubscribe", now=st.clock.now())
    except TokenError as exc:
        return pages.message("This link does not work", str(exc), exc.status)
    await blocking.write(request, _opt_out, st.feedback, claims, st.clock.now())
    return pages.message("You are unsubscribed", "You will get no more requests for feedback. Thank you for "
                         "listening with us.")


def _opt_out(feedback, claims, now: float) -> None:
    """On the store's write lane: the opt-out, and its event the first time."""
    if feedback.opt_out(claims.listener_id, f"unsubscribe link ({claims.program_id}, {claims.channel})", now):
        feedback.record_event(claims.program_id, "unsubscribe", {"listener_id": claims.listener_id,
                                                               "channel": claims.channel}, now)
