"""Each output format's escaping keeps hostile text as text: no markup, no mention, no header of its own."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage

import pytest

from irkit import escaping

SCRIPT = "</script><script>alert(1)</script><!--"
BREAKS = "a\nb\rc\u2028d\u2029e\x0bf\x85g\x00h"


def test_json_in_a_script_element_cannot_end_it_yet_parses_to_the_same_value():
    value = {"name": SCRIPT, "text": "a & b > c \u2028 \u2029"}
    text = escaping.script_json(value)
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(text) == value
    assert escaping.script_json(json.dumps(value)) == text  # JSON text is taken as it is


def test_plotly_text_shows_markup_as_characters():
    assert escaping.plotly_text('<a href="https://evil.example">x</a> & <b>') == \
        '&lt;a href="https://evil.example"&gt;x&lt;/a&gt; &amp; &lt;b&gt;'


@pytest.mark.parametrize("text", [
    "<img src=x onerror=alert(1)>", "[click](javascript:alert(1))", "![x](https://evil.example/p.png)",
    "**bold** _it_ `code` # heading", "a\n# heading on its own line\n- item", "<https://evil.example>",
    "| a | b |", "&lt;script&gt;",
])
def test_markdown_text_is_one_line_with_no_markup_and_no_html(text: str):
    out = escaping.markdown(text)
    assert "\n" not in out and "<" not in out and ">" not in out
    for mark in ("[", "]", "(", "`", "*", "_", "#", "|", "!"):
        assert mark not in out.replace("\\" + mark, "")  # every markup character is escaped
    assert "&lt;" not in text or "&amp;lt;" in out  # an entity in the data stays the characters it was


def test_a_code_span_and_a_fence_cannot_be_closed_by_their_content():
    span = escaping.code_span("a `` b ``` c")
    assert span.startswith("````") and span.endswith("````")
    block = escaping.fence("text\n```\n# not a heading\n````")
    first, *_, last = block.splitlines()
    assert first == last == "`````"


def test_slack_text_escapes_its_control_characters_and_makes_mentions_inert():
    out = escaping.slack("<!channel> <https://evil.example|Click> @here & @everyone\nnext")
    assert out == ("&lt;!channel&gt; &lt;https://evil.example|Click&gt; @\u200bhere &amp; @\u200beveryone next")


def test_one_line_leaves_no_line_break_python_or_a_mail_header_knows():
    flat = escaping.one_line(BREAKS)
    assert flat == "a b c d e f g h" and flat.splitlines() == [flat]
    mail = EmailMessage(policy=email.policy.SMTP)
    mail["Subject"] = escaping.one_line("Down\u2028Bcc: attacker@evil.example")  # would raise unflattened
    parsed = email.message_from_bytes(mail.as_bytes(), policy=email.policy.SMTP)
    assert parsed["Bcc"] is None and "attacker@evil.example" in parsed["Subject"]


def test_a_terminal_line_carries_no_escape_sequence():
    from irkit.escaping import terminal
    planted = "pid 7 \x1b]0;owned\x07 \x1b[2J\x9b31m idle\r\nFAKE: RECOVERED\u2028x"
    shown = terminal(planted)
    assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or c in "\u2028\u2029" for c in shown)
    assert "owned" in shown and "FAKE: RECOVERED" in shown  # the words stay, on the same line
