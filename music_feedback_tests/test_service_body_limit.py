"""The request body limit (16 KiB) holds while the body is read, for every body shape: a Content-Length
over it is answered 413 before a byte is read, a chunked body the moment it passes it; the connection is
closed, so the client's upload is cut short and the server's memory stays flat."""
from __future__ import annotations

import asyncio
import json
import socket
import threading
import time

import httpx
import pytest

from music_feedback.service.limits import MAX_BODY_BYTES, BodyLimit
from music_feedback_tests.service_support import LINKS, PROGRAM, make_app, sqlite_store

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
DAY, L, T = "2026-11-23", 11, 300


class Counting:
    """An ASGI wrapper outside the app: counts the body bytes the app (its BodyLimit first) pulled."""

    def __init__(self, app):
        self.app, self.read = app, 0

    async def __call__(self, scope, receive, send):
        async def counted():
            message = await receive()
            self.read += len(message.get("body", b""))
            return message
        await self.app(scope, counted, send)


@pytest.fixture
def server(tmp_path, serve):
    app = Counting(make_app(sqlite_store(tmp_path)))
    return serve(app), app


def raw_post(url: str, head: str, chunks) -> tuple[int, bytes]:
    """Send `head` then each of `chunks` over one socket while a thread reads the answer (a server that
    answers early closes the connection: the upload stops there). -> (body bytes sent, the answer)."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    answer = bytearray()

    def read():
        try:
            while data := sock.recv(65536):
                answer.extend(data)
        except OSError:
            pass
    reader = threading.Thread(target=read)
    reader.start()
    sent = 0
    try:
        sock.sendall(head.encode())
        for chunk in chunks:
            sock.sendall(chunk)
            sent += len(chunk)
    except OSError:  # reset or broken pipe: the server stopped reading and closed
        pass
    reader.join(30)
    sock.close()
    return sent, bytes(answer)


def status_and_body(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_a_32_mib_json_body_is_refused_before_it_is_read(server):
    url, app = server
    size, piece = 32 * MIB, b"x" * 65536
    head = (f"POST /v1/feedback HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            f"Content-Length: {size}\r\n\r\n")
    started = time.perf_counter()
    sent, answer = raw_post(url, head, (piece for _ in range(size // len(piece))))
    status, body = status_and_body(answer)
    assert status == 413 and body == {"error": "too_large", "parameter": "body",
                                      "message": f"the request body is larger than {MAX_BODY_BYTES} bytes"}
    assert app.read == 0  # not a byte of the body reached the app
    assert sent < 16 * MIB  # the upload was cut short: what went out sat in the sockets' buffers
    assert time.perf_counter() - started < 10


def test_a_chunked_form_of_ten_1000_kib_fields_is_refused_mid_stream(server):
    url, app = server
    feedback_token = LINKS.sign("feedback", PROGRAM, L, T, DAY, "email", int(time.time()) + 3600)

    def chunks():
        for i in range(10):
            part = (f'--BB\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\n'.encode()
                    + b"y" * (1000 * 1024) + b"\r\n")
            for at in range(0, len(part), 65536):
                piece = part[at:at + 65536]
                yield b"%x\r\n%s\r\n" % (len(piece), piece)
        yield b"--BB--\r\n0\r\n\r\n"
    head = (f"POST /f/{feedback_token} HTTP/1.1\r\nHost: t\r\n"
            "Content-Type: multipart/form-data; boundary=BB\r\nTransfer-Encoding: chunked\r\n\r\n")
    sent, answer = raw_post(url, head, chunks())
    status, body = status_and_body(answer)
    assert status == 413 and body["error"] == "too_large" and body["parameter"] == "body"
    # The limit plus what uvicorn had buffered when it was asked (it stops reading the socket at 64 KiB
    # unread; one socket read is at most 256 KiB): flat, whatever the body's size.
    assert app.read < MAX_BODY_BYTES + 320 * 1024
    assert sent < 5 * MIB  # of 10 MB


def test_every_body_shape_within_the_limit_still_works_and_over_it_is_413(server):
    url, app = server
    feedback_token = LINKS.sign("feedback", PROGRAM, L, T, DAY, "email", int(time.time()) + 3600)
    with httpx.Client(base_url=url, timeout=30) as client:
        big = "x" * (MAX_BODY_BYTES + 1)
        over = [client.post("/v1/feedback", content=big, headers={"Content-Type": "application/json"}),
                client.post(f"/f/{feedback_token}", data={"comment": big}),
                client.post(f"/f/{feedback_token}", files={"comment": (None, big)}),
                client.post(f"/f/{feedback_token}", content=iter([big[:9000].encode(), big[9000:].encode()]),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})]  # chunked
        assert [r.status_code for r in over] == [413] * 4
        assert all(r.json()["error"] == "too_large" for r in over)
        # Within it, chunked or not, the app gets the whole body: the service's own 4xx, not a 413.
        small = json.dumps({"token": "not-a-token-at-all", "rating": "up", "submissionId": "small-body-1"})
        plain = client.post("/v1/feedback", content=small, headers={"Content-Type": "application/json"})
        chunked = client.post("/v1/feedback", content=iter([small[:10].encode(), small[10:].encode()]),
                              headers={"Content-Type": "application/json"})
        assert plain.status_code == chunked.status_code == 400 and plain.json() == chunked.json()
        assert plain.json()["parameter"] == "token"
        pieces = [b"rating=sideways", b"&submissionId=abc12345"]
        form = client.post(f"/f/{feedback_token}", content=iter(pieces),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert form.status_code == 422 and "rating" in form.text
        assert client.get("/healthz").status_code == 200


@pytest.mark.unit
def test_the_middleware_alone_reads_no_more_than_the_limit():
    async def run(headers, pieces):
        calls, sent = [], []
        messages = [{"type": "http.request", "body": p, "more_body": i < len(pieces) - 1}
                    for i, p in enumerate(pieces)]
        pulled = []

        async def receive():
            pulled.append(messages[len(pulled)])
            return pulled[-1]

        async def app(scope, receive, send):
            message = await receive()
            calls.append(message["body"])

        async def send(message):
            sent.append(message)
        await BodyLimit(app, max_bytes=10)({"type": "http", "headers": headers}, receive, send)
        return calls, [m.get("status") for m in sent if m["type"] == "http.response.start"], len(pulled)

    assert asyncio.run(run([(b"content-length", b"11")], [b"x" * 11])) == ([], [413], 0)
    chunked = [(b"transfer-encoding", b"chunked")]
    assert asyncio.run(run(chunked, [b"x" * 6, b"x" * 6, b"x" * 6])) == ([], [413], 2)
    assert asyncio.run(run([(b"transfer-encoding", b"chunked")], [b"ab", b"cd", b""])) == ([b"abcd"], [], 3)
    assert asyncio.run(run([(b"content-length", b"4")], [b"abcd"])) == ([b"abcd"], [], 1)
    assert asyncio.run(run([], [b""])) == ([b""], [], 1)  # no body: passed through untouched
