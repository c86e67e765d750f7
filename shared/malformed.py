"""uvicorn's HTTP protocol (httptools, what uvicorn[standard] runs), but a request it cannot parse (a broken request
line, an invalid header) is answered with the JSON error body of every other error, not uvicorn's plain text.

uvicorn has no setting for that answer: its `http` setting takes a protocol class, and this one overrides the
method uvicorn calls to write it, `send_400_response`, of a class uvicorn does not document. That reach stays in this
module; tests/shared/test_malformed.py fails if uvicorn renames the method or stops calling it."""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from shared.errors import ApiError, error_response

DETAIL = "This is not an HTTP/1.1 request that can be read: check the request line and the headers."
SPEC = f"{__name__}:JsonErrorProtocol"  # for uvicorn's command line: --http shared.malformed:JsonErrorProtocol


def answer(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole 400, from the one error shape (shared/errors.py); the connection closes after it, as uvicorn's
    does, since what follows a request that cannot be parsed cannot be either."""
    response = error_response(ApiError(400, detail=DETAIL))
    headers = [*default_headers, *response.raw_headers, (b"x-content-type-options", b"nosniff"),
               (b"connection", b"close")]  # fmt: skip
    return b"".join([STATUS_LINE[400], *(name + b": " + value + b"\r\n" for name, value in headers), b"\r\n",
                     response.body])  # fmt: skip


class JsonErrorProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        """`msg` is uvicorn's plain text, also logged by uvicorn before it calls this."""
        self.transport.write(answer(self.server_state.default_headers))
        self.transport.close()
