"""A ``multipart/form-data`` body read into memory under a size cap, and split into its fields.

Starlette's own form parser needs the ``python-multipart`` package, which the environment does not
have; the form here is small (two images and a pose at most) and read whole, so splitting it on its
boundary is a few lines (RFC 7578). Nothing is written to disk: an upload lives in memory for the
request and is gone with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from email.utils import collapse_rfc2231_value

MAX_PARTS = 16  # the API has five fields; more is not a form of ours


class FormError(ValueError):
    """A body that is not a form of ours; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Part:
    name: str
    filename: str | None  # None for a text field
    data: bytes

    def text(self) -> str:
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            raise FormError(f"field '{self.name}' is not UTF-8 text") from None


async def read_body(request, limit: int, drain_limit: int) -> bytes:
    """The request body, or ``FormError(413)`` past ``limit`` bytes. A larger body is still read to
    its end (discarded, up to ``drain_limit``) so that the client, which is sending it, reads the
    answer instead of a reset connection."""
    declared = request.headers.get("content-length")
    too_big = f"the request is larger than the {limit / 2**20:.0f} MB upload limit"
    if declared is not None and declared.isdigit() and int(declared) > drain_limit:
        raise FormError(too_big, 413)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > drain_limit:
            break
    if size > limit:
        raise FormError(too_big, 413)
    return b"".join(chunks)


def _header_params(name: str, value: str) -> Message:
    """Parses ``value`` as header ``name`` (RFC 2231/2045 parameters, quoting) with the stdlib."""
    message = Message()
    message[name] = value
    return message


def parse_form(content_type: str, body: bytes) -> dict[str, Part]:
    """The fields of a multipart/form-data body by name; each name at most once."""
    header = _header_params("content-type", content_type or "")
    if header.get_content_type() != "multipart/form-data":
        raise FormError(f"expected a multipart/form-data body, got '{content_type or 'no content type'}'", 415)
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70:
        raise FormError("multipart/form-data without a valid boundary")
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    chunks = (b"\r\n" + body).split(delimiter)
    # chunks[0] is the preamble; the last delimiter is followed by "--" (the close delimiter)
    if len(chunks) < 2 or not chunks[-1].startswith(b"--"):
        raise FormError("malformed multipart body: no closing boundary")
    if len(chunks) - 2 > MAX_PARTS:
        raise FormError(f"too many form fields ({len(chunks) - 2}; at most {MAX_PARTS})")
    fields: dict[str, Part] = {}
    for chunk in chunks[1:-1]:
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep:
            raise FormError("malformed multipart body: a part without headers")
        headers = {}
        for line in head.split(b"\r\n")[1:]:  # [0] is what followed the boundary on its line
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = _header_params("content-disposition", headers.get("content-disposition", ""))
        name = disposition.get_param("name", header="content-disposition")
        name = collapse_rfc2231_value(name) if name else None
        if not name:
            raise FormError("malformed multipart body: a part without Content-Disposition: form-data; name=...")
        if name in fields:
            raise FormError(f"field '{name}' is given twice")
        fields[name] = Part(name, disposition.get_filename(), data)
    return fields
