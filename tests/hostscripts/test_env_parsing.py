"""The host package's env-file parser (clipper.envfile): the reading half of the round trip.

The Pulumi side writes the file with `components.renderers.env_file.render_env_file`;
`clipper-release` parses it and hands each value to docker. Whatever the renderer writes must
come back byte for byte, including PEM keys, quotes, `$`, `=`, `#` and edge spaces.
"""

from __future__ import annotations

import pytest
from clipper.envfile import env_digest, parse_env_text
from clipper.errors import ConfigError

from components.renderers.env_file import render_env_file

PEM = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIGcHk0Jx7mCkMDtdRzQz3DX6Hy0mIfVnGq1nE6uLvhJr\n"
    "-----END PRIVATE KEY-----\n"
)
TRICKY: dict[str, str] = {
    "JWT_PRIVATE_KEY": PEM,
    "QUOTES": "say \"hi\" and 'bye'",
    "DOLLAR": "pa$$word$HOME${PATH}",
    "EQUALS": "a=b==c=",
    "HASH": "#not-a-comment # really",
    "BACKSLASH": "C:\\path\\n-not-a-newline\\",
    "EDGE_SPACES": "  padded  ",
    "TAB_INSIDE": "a\tb",
    "UNICODE": "clé ✓ 🔑",
    "EMPTY": "",
    "URL": "postgres://u@h:25060/db?sslmode=require&x=1",
    "ONLY_NEWLINES": "\n\n",
}


@pytest.mark.parametrize("key", sorted(TRICKY))
def test_every_value_the_renderer_writes_parses_back_unchanged(key: str) -> None:
    text = render_env_file({key: TRICKY[key]}, "round trip")
    assert parse_env_text(text) == {key: TRICKY[key]}


def test_a_whole_file_round_trips_in_one_piece() -> None:
    assert parse_env_text(render_env_file(TRICKY, "round trip")) == TRICKY


def test_comments_and_blank_lines_are_skipped() -> None:
    text = "# a comment\n\n   # indented comment\nA=1\n\nB=2\n"
    assert parse_env_text(text) == {"A": "1", "B": "2"}


def test_an_unquoted_value_is_taken_literally_up_to_the_end_of_the_line() -> None:
    assert parse_env_text("A=x # y = z\n") == {"A": "x # y = z"}
    assert parse_env_text("A='single'\n") == {"A": "'single'"}


def test_a_carriage_return_inside_a_value_is_kept_not_treated_as_a_line_end() -> None:
    # str.splitlines() would cut this value in two; the format's lines end at \n only.
    assert parse_env_text("A=x\ry\x1cz\nB=2\n") == {"A": "x\ry\x1cz", "B": "2"}


def test_quoted_values_decode_exactly_three_escapes() -> None:
    assert parse_env_text('A="x\\ny\\"z\\\\w"\n') == {"A": 'x\ny"z\\w'}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("NOT A LINE\n", "expected KEY=VALUE"),
        ("1KEY=x\n", "expected KEY=VALUE"),
        (" KEY=x\n", "expected KEY=VALUE"),
        ("export KEY=x\n", "expected KEY=VALUE"),
        ('A="open\n', "no closing quote"),
        ('A="bad \\t escape"\n', "unknown escape"),
        ('A="x" trailing\n', "after the closing quote"),
        ("A=1\nA=2\n", "A is set twice"),
    ],
)
def test_malformed_lines_are_refused_with_the_line_number(text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_env_text(text, "/etc/clipper/backend.env")
    assert problem in str(err.value)
    assert "/etc/clipper/backend.env, line" in str(err.value)


def test_a_parse_error_never_quotes_the_value() -> None:
    with pytest.raises(ConfigError) as err:
        parse_env_text('DB_PASSWORD="hunter2-secret\n')
    assert "hunter2-secret" not in str(err.value)


def test_the_env_digest_ignores_comments_and_order_but_not_values() -> None:
    first = parse_env_text("# v1\nA=1\nB=2\n")
    reordered = parse_env_text("B=2\n# another comment\nA=1\n")
    changed = parse_env_text("A=1\nB=3\n")
    assert env_digest(first) == env_digest(reordered)
    assert env_digest(first) != env_digest(changed)
