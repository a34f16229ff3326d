"""HTML pages for listeners (feedback form, confirmations, errors): Jinja2 with autoescape, so a comment
with markup is shown as text."""
from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path

from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

STYLE = re.compile(r"<style>(.*?)</style>", re.S)


@lru_cache(maxsize=1)
def _env() -> Environment:
    return Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                       autoescape=select_autoescape(enabled_extensions=("html", "html.j2"), default=True))


@lru_cache(maxsize=1)
def style_hashes() -> tuple[str, ...]:
    """CSP sources ('sha256-...') of the pages' inline <style> blocks, as rendered: the pages' CSP allows
    these styles and nothing else inline. The blocks come from base.html.j2 and hold no template variable,
    so every page renders the same ones."""
    html = _env().get_template("message.html.j2").render(title="", message="")
    return tuple(f"'sha256-{base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()}'"
                 for css in STYLE.findall(html))


def page(template: str, status: int = 200, headers: dict | None = None, **context) -> HTMLResponse:
    html = _env().get_template(template).render(**context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def message(title: str, text: str, status: int = 200, **context) -> HTMLResponse:
    return page("message.html.j2", status, title=title, message=text, **context)
