"""A real browser on the feedback page: Debian's Chromium driven by Playwright (never a downloaded one),
on a phone-sized screen with JavaScript off, following the link of a delivered message."""
from __future__ import annotations

import email
import os
import re
import shutil
from email import policy

import pytest

from music_feedback.delivery.holdout import is_held_out
from music_feedback_tests.delivery_support import DAY, PROGRAM, delivery, seed_day, stores
from music_feedback_tests.service_support import make_app

pytestmark = pytest.mark.integration

# Typed, with a line break, to the page's maxlength (200): the browser sends the break as CRLF.
COMMENT = ("Too slow for me <b>sorry</b>\n" + "but the bassline is lovely " * 8)[:200]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "Debian's chromium is not installed (make test installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def delivered_link(home, warehouse) -> tuple[str, int, int]:
    """The 'Share Your Thoughts' href of a message in the outbox, and its listener and track."""
    listeners = seed_day(home, warehouse, 10)
    delivery(home, warehouse).run(DAY, "US")
    path = next((home / "outbox" / "new").iterdir())
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    html = msg.get_body(("html",)).get_content()
    href = re.search(r'<a href="([^"]+)"[^>]*>Share Your Thoughts</a>', html).group(1).replace("&amp;", "&")
    lid = int(re.search(r"listener-(\d+)@", msg["To"]).group(1))
    assert lid in listeners and not is_held_out(PROGRAM, lid)
    return href, lid, 500 + listeners.index(lid) % 7


def test_a_listener_answers_from_a_delivered_message(tmp_path, small_warehouse, serve):
    from playwright.sync_api import sync_playwright
    executable = chromium()  # skip (or fail on CI) before any work
    href, lid, tid = delivered_link(tmp_path, small_warehouse)
    candidates, feedback = stores(tmp_path)
    base = serve(make_app(candidates, feedback=feedback))
    url = href.replace("https://feedback.test", base)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = browser.new_context(viewport={"width": 390, "height": 844}, java_script_enabled=False,
                                       is_mobile=True).new_page()
            page.goto(url)
            form_url = page.url
            assert form_url.startswith(f"{base}/f/")  # the click redirect went to our own page
            assert "What did you think of Track" in page.inner_text("h1")
            page.screenshot(path=str(tmp_path / "form.png"), full_page=True)
            page.check("input[name=rating][value=down]")
            page.check("input[name=tags][value=rock]")
            page.check("input[name=tags][value=jazz]")
            page.locator("textarea[name=comment]").press_sequentially(COMMENT)
            assert page.input_value("textarea[name=comment]") == COMMENT  # maxlength let all of it in
            for box in page.locator("form button, form textarea").all():
                bounds = box.bounding_box()
                assert bounds["x"] >= 0 and bounds["x"] + bounds["width"] <= 390, "the form overflows a phone"
            page.click("button[type=submit]")
            assert page.inner_text("h1") == "Thank you!"
            assert "Too slow for me <b>sorry</b>" in page.inner_text("body")  # shown as text, not markup
            page.screenshot(path=str(tmp_path / "thanks.png"))
            # The layout itself must not scroll sideways on a phone; measuring it needs JavaScript.
            measure = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
            refused = []  # the page's Content-Security-Policy must not block anything the page itself uses
            measure.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
            shown = measure.goto(form_url)  # the form itself, not the click link: one click event only
            assert measure.evaluate("document.documentElement.scrollWidth") <= 390
            button = "getComputedStyle(document.querySelector('button[type=submit]')).backgroundColor"
            assert measure.evaluate(button) == "rgb(29, 185, 84)"  # the inline style applied under the CSP
            assert refused == [] and "frame-ancestors 'none'" in shown.headers["content-security-policy"]
        finally:
            browser.close()
    stored = feedback.feedback(PROGRAM.program_id, lid, tid)
    assert stored["rating"] == -1 and stored["tags"] == ["jazz", "rock"]
    assert stored["comment"] == COMMENT and stored["channel"] == "email"
    assert [e["kind"] for e in feedback.events(PROGRAM.program_id, "click")] == ["click"]
    status = {r["channel"]: r["status"] for r in candidates.for_listener(PROGRAM.program_id, lid)
              if r["track_id"] == tid}
    assert status["email"] == "consumed"
