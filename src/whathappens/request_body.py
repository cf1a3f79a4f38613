"""A request body from the command line, as curl builds it.

``-d/--data``, ``--data-raw``, ``--data-binary``, ``--data-urlencode`` and ``--data-json``
(curl calls the last one ``--json``; here that name is the output flag) each give one part;
the parts are joined in the order given: with ``&`` for the form kinds, as they are for
curl, and back to back for JSON. The form kinds imply ``POST`` and
``Content-Type: application/x-www-form-urlencoded`` (an HTML form's encoding, HTML §4.10.21.7),
JSON implies ``POST`` with ``Content-Type`` and ``Accept: application/json``; an explicit
``-X`` or ``-H`` wins.

``@FILE`` reads a file (``@-`` is not supported: a journey reads no stdin): ``-d @FILE`` drops
its carriage returns and newlines, as curl does; ``--data-binary @FILE`` sends it byte for
byte. Every read is bounded (``MAX_BODY_BYTES``), and a file that cannot be read is a usage
error naming it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass

MAX_BODY_BYTES = 10 * 1024 * 1024
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
KINDS = ("data", "data-raw", "data-binary", "data-urlencode", "data-json")


class BodyError(ValueError):
    """A body part that cannot be built (a file missing, unreadable or too large)."""


@dataclass(frozen=True)
class Part:
    kind: str        # one of KINDS
    data: bytes      # what goes on the wire for this part


def read_bounded(path: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """The file's bytes, at most ``limit``; BodyError when it is larger or unreadable."""
    if path == "-":
        raise BodyError("@- (standard input) is not supported: name a file")
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise BodyError(f"cannot read the file '{path}': {e.strerror or e}") from None
    if len(data) > limit:
        raise BodyError(f"the file '{path}' is larger than {limit} bytes, the largest "
                        "body this sends")
    return data


def urlencode_part(value: str, read: bool = True) -> bytes:
    """curl's ``--data-urlencode``: ``content``, ``=content``, ``name=content``, ``@file``,
    ``name@file``; the content percent-encoded (RFC 3986 unreserved characters stay)."""
    name, content = "", value
    eq, at = value.find("="), value.find("@")
    if eq >= 0 and (at < 0 or eq < at):
        name, content = value[:eq], value[eq + 1:]
    elif at >= 0:
        name = value[:at]
        content = read_bounded(value[at + 1:]).decode("utf-8", errors="surrogateescape") \
            if read else value[at + 1:]
    encoded = urllib.parse.quote(content.encode("utf-8", errors="surrogateescape"), safe="")
    return (f"{name}={encoded}" if name else encoded).encode("ascii")


def make_part(kind: str, value: str) -> Part:
    """One command-line body option as the bytes it sends."""
    if kind == "data-urlencode":
        return Part(kind, urlencode_part(value))
    if kind != "data-raw" and value.startswith("@"):
        data = read_bounded(value[1:])
        if kind == "data":
            data = data.replace(b"\r", b"").replace(b"\n", b"")
        return Part(kind, data)
    data = value.encode("utf-8", errors="surrogateescape")
    if len(data) > MAX_BODY_BYTES:
        raise BodyError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    return Part(kind, data)


@dataclass(frozen=True)
class Body:
    data: bytes
    content_type: str     # what the parts imply
    json: bool = False

    def headers(self, given: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """The fields the body implies that the user did not set (``-H`` wins)."""
        names = {n.lower() for n, _ in given}
        out = []
        if "content-type" not in names:
            out.append(("Content-Type", self.content_type))
        if self.json and "accept" not in names:
            out.append(("Accept", JSON))
        return out


def join(parts: Sequence[Part]) -> Body | None:
    """The body of all the parts, in order; None when there are none."""
    if not parts:
        return None
    is_json = all(p.kind == "data-json" for p in parts)
    sep = b"" if is_json else b"&"
    data = sep.join(p.data for p in parts)
    if len(data) > MAX_BODY_BYTES:
        raise BodyError(f"the body is larger than {MAX_BODY_BYTES} bytes")
    return Body(data, JSON if is_json else FORM, json=is_json)


def method_for(explicit: str | None, body: Body | None) -> str:
    """``-X`` if given; else POST with a body (curl's -d), GET without."""
    if explicit:
        return explicit.upper()
    return "POST" if body is not None else "GET"
