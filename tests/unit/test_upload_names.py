"""The file-name sanitiser and the RFC 6266 Content-Disposition header, against hostile names."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tow_core.uploads import MAX_NAME_BYTES, sanitise_filename
from tow_http.downloads import byte_range, content_disposition

DEVICES = ["CON", "PRN", "AUX", "NUL", "COM1", "COM9", "LPT1", "LPT9", "CONIN$", "CONOUT$", "COM¹"]
PIECES = [
    "..", ".", "/", "\\", "../", "..\\", "/etc/passwd", "C:\\Windows\\system32", "C:", "\x00", "%2e%2e", "%2f",
    "%00", "\u202e", "\u202d", "\u2066", "\u200b", "\ufeff", "\u2215", "\u2044", "\uff0f", "\uff3c", "\uff0e",
    "\u0430", "\u2024", "\u3002", " ", "\t", "\n", "\r", ":", "*", "?", '"', "<", ">", "|", "~", "$", "\ud800",
    "\U000e0041", "\ue000", "a", "é", "名", "🙂", ".exe", ".txt", "x" * 120, "é" * 90, *DEVICES,
]
hostile_names = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=12).map("".join),
    st.text(max_size=300),
    st.sampled_from(DEVICES).flatmap(lambda d: st.sampled_from([d, d.lower(), f"{d}.txt", f"{d} .log", f" {d}"])),
    st.integers(1, 400).map(lambda n: "." * n),
    st.just(""),
)
VISIBLE_FORBIDDEN = re.compile(r'[/\\:*?"<>|]')


def assert_safe(name: str) -> None:
    assert name, "never empty"
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES
    assert not VISIBLE_FORBIDDEN.search(name), name
    assert not any(unicodedata.category(c).startswith("C") for c in name), ascii(name)
    assert name == name.strip(" .") and name not in (".", "..")
    stem = name.split(".", 1)[0].strip()
    assert stem.upper() not in {d.upper() for d in DEVICES}, name


@settings(max_examples=1500, deadline=None)
@given(hostile_names)
def test_sanitised_names_are_one_safe_visible_segment(name):
    assert_safe(sanitise_filename(name))


@pytest.mark.parametrize(("given_name", "kept"), [
    ("report.pdf", "report.pdf"),
    ("../../etc/passwd", "_.._etc_passwd"),
    ("C:\\boot.ini", "C__boot.ini"),
    ("invoice\u202efdp.exe", "invoicefdp.exe"),  # the bidi override that disguised ".exe" is gone
    ("\uff0e\uff0e\uff0fsecret", "_secret"),  # fullwidth "../" folds to "../", then becomes safe
    ("CON", "_CON"), ("nul.txt", "_nul.txt"), ("COM¹.log", "_COM1.log"),
    ("...", "upload"), ("", "upload"), ("\x00\x00", "upload"),
    ("%2e%2e%2fx", "%2e%2e%2fx"),  # kept literally: it is never decoded, never a path
    ("Quartalsbericht Ü.pdf", "Quartalsbericht Ü.pdf"),
])
def test_examples(given_name, kept):
    assert sanitise_filename(given_name) == kept


def test_long_names_keep_their_extension_and_whole_characters():
    name = sanitise_filename("é" * 300 + ".pdf")
    assert name.endswith(".pdf") and len(name.encode()) <= MAX_NAME_BYTES
    assert set(name[:-4]) == {"é"}


def parse_disposition(header: str) -> tuple[str, str, str]:
    match = re.fullmatch(r"(attachment|inline); filename=\"([^\"\\]*)\"; filename\*=UTF-8''([A-Za-z0-9!#$&+\-.^_`|~%]*)",
                         header)
    assert match, header
    return match.group(1), match.group(2), unquote(match.group(3), errors="strict")


@settings(max_examples=1000, deadline=None)
@given(hostile_names, st.booleans())
def test_content_disposition_is_rfc6266_with_an_exact_utf8_name_and_a_safe_ascii_fallback(name, inline):
    safe = sanitise_filename(name)
    header = content_disposition(safe, inline=inline)
    header.encode("ascii")  # header values are ASCII: no raw UTF-8, no CR/LF smuggling
    kind, fallback, exact = parse_disposition(header)
    assert kind == ("inline" if inline else "attachment")
    assert exact == safe
    assert fallback and "%" not in fallback and "/" not in fallback and "\\" not in fallback


@pytest.mark.parametrize(("header", "size", "expected"), [
    (None, 10, None), ("bytes=0-4", 10, (0, 4)), ("bytes=5-", 10, (5, 9)), ("bytes=-3", 10, (7, 9)),
    ("bytes=-30", 10, (0, 9)), ("bytes=8-100", 10, (8, 9)), ("bytes=10-", 10, False), ("bytes=-0", 10, False),
    ("bytes=0-", 0, False), ("bytes=4-2", 10, None), ("bytes=0-1,3-4", 10, None), ("items=0-1", 10, None),
    ("bytes=-", 10, None), ("bytes=abc", 10, None),
])
def test_byte_ranges(header, size, expected):
    assert byte_range(header, size) == expected
