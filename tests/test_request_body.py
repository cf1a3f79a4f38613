"""Request bodies as curl builds them (pure), and the option parsing around them."""

from __future__ import annotations

from pathlib import Path

import pytest

from whathappens.commands.arguments import options_from
from whathappens.commands.trace import _parser
from whathappens.request_body import (
    FORM,
    JSON,
    BodyError,
    join,
    make_part,
    method_for,
    read_bounded,
    urlencode_part,
)


def test_urlencode_forms_as_curl() -> None:
    assert urlencode_part("a b&c") == b"a%20b%26c"
    assert urlencode_part("=a b") == b"a%20b"
    assert urlencode_part("name=é x") == b"name=%C3%A9%20x"


def test_urlencode_file(tmp_path: Path) -> None:
    f = tmp_path / "m.txt"
    f.write_text("hi there\n")
    assert urlencode_part(f"msg@{f}") == b"msg=hi%20there%0A"


def test_data_file_drops_newlines_binary_keeps_them(tmp_path: Path) -> None:
    f = tmp_path / "d"
    f.write_bytes(b"a=1\r\n&b=2\n")
    assert make_part("data", f"@{f}").data == b"a=1&b=2"
    assert make_part("data-binary", f"@{f}").data == b"a=1\r\n&b=2\n"
    assert make_part("data-raw", "@x").data == b"@x"


def test_join_and_implied_fields() -> None:
    body = join([make_part("data", "a=1"), make_part("data-urlencode", "b=x y")])
    assert body is not None
    assert body.data == b"a=1&b=x%20y"
    assert body.content_type == FORM
    assert body.headers([("content-type", "text/plain")]) == []
    js = join([make_part("data-json", '{"a":'), make_part("data-json", "1}")])
    assert js is not None
    assert js.data == b'{"a":1}'
    assert js.headers([]) == [("Content-Type", JSON), ("Accept", JSON)]
    assert join([]) is None
    assert method_for(None, body) == "POST"
    assert method_for("put", body) == "PUT"
    assert method_for(None, None) == "GET"


def test_bounded_reads(tmp_path: Path) -> None:
    f = tmp_path / "big"
    f.write_bytes(b"x" * 101)
    with pytest.raises(BodyError, match="larger than 100"):
        read_bounded(str(f), 100)
    with pytest.raises(BodyError, match="cannot read"):
        read_bounded(str(tmp_path / "missing"))
    with pytest.raises(BodyError, match="standard input"):
        read_bounded("-")


def test_cli_options_become_the_request(tmp_path: Path) -> None:
    args = _parser().parse_args(["http://127.0.0.1/", "-d", "a=1", "--data-urlencode",
                                 "m=x y", "-H", "X-A: b", "--json"])
    opts = options_from(args)
    assert args.json is True                      # the output flag still means output
    assert opts.method == "POST"
    assert opts.body == b"a=1&m=x%20y"
    assert ("Content-Type", FORM) in opts.headers
    assert ("X-A", "b") in opts.headers
    plain = options_from(_parser().parse_args(["http://127.0.0.1/"]))
    assert plain.method == "GET"
    assert plain.body == b""


def test_cli_unreadable_file_is_a_usage_error(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        _parser().parse_args(["http://x/", "--data-binary", f"@{tmp_path / 'nope'}"])
    assert e.value.code == 2
    assert "cannot read the file" in capsys.readouterr().err
