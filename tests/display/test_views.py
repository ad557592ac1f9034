"""Tables as a responder reads them, in JupyterLab and in the saved outputs."""

from __future__ import annotations

import math

import pandas as pd
from IPython.core.interactiveshell import InteractiveShell

from irkit.display.views import install_formatters, table_html, table_text

FRAME = pd.DataFrame({
    "service": ["backend", "frontend"],
    "error_ratio": [0.1204, math.nan],
    "age_seconds": [312.46, 4.25],
    "evidence": [{"pid": 42, "state": "idle in transaction"}, None],
    "at": [pd.Timestamp("2026-12-01T02:40:12.345Z"), pd.NaT],
}, index=[7, 9])


def test_a_table_has_no_index_percentages_rounded_seconds_and_no_raw_values():
    html = table_html(FRAME)
    assert "<th>service</th>" in html and ">7<" not in html and ">9<" not in html  # no index column
    assert "<td>12.0%</td>" in html and "<td>312</td>" in html and "<td>4.2</td>" in html
    assert "pid=42, state=idle in transaction" in html and "{" not in html
    assert "2026-12-01 02:40:12" in html
    for missing in ("nan", "NaN", "None", "NaT"):
        assert missing not in html and missing not in table_text(FRAME)


def test_the_notebook_shows_every_dataframe_that_way():
    shell = InteractiveShell.instance()
    install_formatters(shell)
    bundle, _ = shell.display_formatter.format(FRAME)
    assert bundle["text/html"] == table_html(FRAME)
    assert bundle["text/plain"] == table_text(FRAME) and "12.0%" in bundle["text/plain"]


def test_a_long_table_shows_its_first_rows_and_says_where_the_rest_is():
    from irkit.display import views
    frame = pd.DataFrame({"pod": [f"p{i}" for i in range(120)], "restarts": range(120)})
    html, text = views.table_html(frame), views.table_text(frame)
    assert html.count("<tr>") == 1 + views.MAX_ROWS and "first 50 of 120 rows" in html and "phase-N.json" in html
    assert "p49" in text and "p50" not in text and "first 50 of 120 rows" in text
    assert "first" not in views.table_html(frame.head(50))
