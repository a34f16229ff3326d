"""track-feedback-v2 for one ledger row: Jinja2 (HTML autoescaped), every link signed and expiring."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from music_feedback.delivery.email.port import EmailMessage
from music_feedback.delivery.links import LinkSigner
from music_feedback.programs.model import Program

MARKETPLACE_NAMES = {"US": "the US", "UK": "the UK", "DE": "Germany", "FR": "France", "JP": "Japan", "IN": "India"}


@lru_cache(maxsize=1)
def environment() -> Environment:
    return Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")), undefined=StrictUndefined,
                       autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=False),
                       keep_trailing_newline=False)


def message_id(program_id: str, batch_date: str, listener_id: int, track_id: int, channel: str, domain: str) -> str:
    """Derived from the ledger key: the same request always carries the same Message-ID."""
    digest = hashlib.sha256(f"{program_id}|{batch_date}|{listener_id}|{track_id}|{channel}".encode()).hexdigest()
    return f"<{digest[:32]}@{domain}>"


class Renderer:
    def __init__(self, program: Program, signer: LinkSigner, public_url: str, address_template: str):
        self.program, self.signer = program, signer
        self.public_url = public_url.rstrip("/")
        self.address_template = address_template
        config = program.channel("email").typed_config()
        self.template_id, self.sender = config.template_id, config.from_address
        self.domain = self.sender.rsplit("@", 1)[-1].rstrip(">").strip() or "localhost"
        env = environment()
        self._html = env.get_template(f"{self.template_id}.html.j2")
        self._text = env.get_template(f"{self.template_id}.txt.j2")
        self._subject = env.get_template(f"{self.template_id}.subject.j2")

    def unsubscribe_expiry(self, expires_at: int) -> int:
        """The unsubscribe link's expiry for a message whose feedback link expires at `expires_at`: the same
        send time plus feedback.unsubscribeTTLDays (a year by default) instead of linkTTLDays."""
        feedback = self.program.feedback
        return int(expires_at + (feedback.unsubscribe_ttl_days - feedback.link_ttl_days) * 86_400)

    def links(self, row: dict, batch_date: str, channel: str, expires_at: int,
              unsubscribe_expires_at: int | None = None) -> dict[str, str]:
        """Signed links; the unsubscribe link outlives the others (see unsubscribe_expiry)."""
        if unsubscribe_expires_at is None:
            unsubscribe_expires_at = self.unsubscribe_expiry(expires_at)

        def token(purpose: str) -> str:
            expiry = unsubscribe_expires_at if purpose == "unsubscribe" else expires_at
            return self.signer.sign(purpose, self.program.program_id, row["listener_id"], row["track_id"],
                                    batch_date, channel, expiry)

        feedback_path = f"/f/{token('feedback')}"
        return {"feedback_url": self.public_url + feedback_path,
                "click_url": f"{self.public_url}/c/{token('click')}?to={quote(feedback_path, safe='')}",
                "open_url": f"{self.public_url}/o/{token('open')}.gif",
                "unsubscribe_url": f"{self.public_url}/u/{token('unsubscribe')}"}

    def message(self, row: dict, batch_date: str, channel: str, expires_at: int,
                unsubscribe_expires_at: int | None = None) -> EmailMessage:
        links = self.links(row, batch_date, channel, expires_at, unsubscribe_expires_at)
        data = {"program_name": self.program.program_name, "track_name": row["track_name"] or f"track {row['track_id']}",
                "genre": row["genre"] or "new", "release_date": row.get("release_date"),
                "marketplace_name": MARKETPLACE_NAMES.get(row["marketplace"], row["marketplace"]), **links}
        data["subject"] = self._subject.render(data).strip()
        return EmailMessage(
            message_id=message_id(self.program.program_id, batch_date, row["listener_id"], row["track_id"], channel,
                                  self.domain),
            sender=self.sender, to=self.address_template.format(listener_id=row["listener_id"]),
            subject=data["subject"], html=self._html.render(data), text=self._text.render(data),
            campaign=row["campaign"],
            # RFC 8058 one-click: the HTTPS URL receives a POST with List-Unsubscribe=One-Click.
            headers={"List-Unsubscribe": f"<{links['unsubscribe_url']}>",
                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                     "X-Campaign": row["campaign"], "X-Template": self.template_id})
