"""Against a real uvicorn, with raw sockets: clients that send less body than they announce (bounded in time;
a client that hangs up is not an error), and the answers uvicorn writes itself (docs/http-api.md)."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from flipper.core.settings import Settings

BULK = "/ofrep/v1/evaluate/flags"


@pytest.fixture
def settings() -> Settings:
    return Settings(body_timeout=0.5)


def send(live_url: str, data: bytes) -> socket.socket:
    url = urlsplit(live_url)
    connection = socket.create_connection((url.hostname, url.port), timeout=5)
    connection.sendall(data)
    return connection


def open_request(live_url: str, announced: int, sent: bytes) -> socket.socket:
    """A connection that has sent an OFREP request's head announcing `announced` body bytes, and `sent` of them."""
    head = f"POST {BULK} HTTP/1.1\r\nHost: flipper.test\r\nContent-Type: application/json\r\n"
    return send(live_url, f"{head}Content-Length: {announced}\r\n\r\n".encode() + sent)


def read_all(connection: socket.socket) -> bytes:
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    return answer


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[Records]:
    """What Flipper's and uvicorn's loggers record (uvicorn's do not propagate to the root logger)."""
    handler = Records()
    loggers = [logging.getLogger(name) for name in ("flipper", "uvicorn.error")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    yield handler
    for logger, level in zip(loggers, levels, strict=True):
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_body_shorter_than_announced_is_a_408_after_the_body_timeout(live_url: str, settings: Settings) -> None:
    started = time.monotonic()
    with open_request(live_url, 100, b'{"context": ') as connection:
        answer = read_all(connection)  # the server closes the connection after answering
    elapsed = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"errorCode": "GENERAL", "errorDetails": "the body did not arrive within 0.5 seconds"}
    assert settings.body_timeout <= elapsed < settings.body_timeout + 2


def test_a_client_hanging_up_mid_body_is_no_error(live_url: str, records: Records) -> None:
    connection = open_request(live_url, 100, b'{"context": ')
    time.sleep(0.1)
    connection.close()
    time.sleep(0.3)  # the server notices the hang-up
    assert [record for record in records.records if record.levelno >= logging.WARNING] == []
    assert [record for record in records.records if record.exc_info] == []
    assert any("client disconnected" in record.getMessage() for record in records.records)


@pytest.mark.parametrize(
    "request_line", [b"FOO / HTTP/1.1", b"GET /?" + b"user=x&" * 10_000 + b" HTTP/1.1", b"NOT HTTP AT ALL"]
)
def test_requests_uvicorn_cannot_parse_get_its_own_text_answer(live_url: str, request_line: bytes) -> None:
    """What docs/http-api.md, "Answers that do not come from Flipper", says uvicorn answers."""
    with send(live_url, request_line + b"\r\nHost: flipper.test\r\n\r\n") as connection:
        head, _, body = read_all(connection).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: text/plain" in head.lower()
    assert body == b"Invalid HTTP request received."
