"""Phase 2's cells on plain data: folded logs, and "no finding" said in a sentence."""

from __future__ import annotations

import pandas as pd


def test_identical_logs_of_several_pods_are_shown_once_with_their_pods():
    from irkit.display.views import LogView
    from irkit.phases.investigate import fold_logs
    panic = "INFO starting\npanic: assignment to entry in nil map\n"
    frame = pd.DataFrame([
        {"pod": "api-1", "container": "api", "previous": True, "text": panic, "deployment": "api"},
        {"pod": "api-2", "container": "api", "previous": True, "text": panic, "deployment": "api"},
        {"pod": "api-3", "container": "api", "previous": True, "text": "OOM\n", "deployment": "api"},
    ])
    folded = fold_logs(frame)
    assert folded["pods"].tolist() == [["api-1", "api-2"], ["api-3"]]
    shown = LogView(folded, "previous logs")._repr_mimebundle_()
    assert shown["text/plain"].count("panic: assignment") == 1  # whole, once
    assert "2 pod(s) api-1, api-2" in shown["text/plain"]
    assert "<pre>INFO starting\npanic: assignment" in shown["text/html"]
    assert fold_logs(frame.iloc[:0]).empty



def test_no_finding_says_so_in_a_sentence(tmp_path):
    from irkit.config import Config
    from irkit.phases import investigate
    from irkit.phases.incident import Incident, Note
    shown = investigate.findings(Incident("INC-9", 2, tmp_path, Config()))
    assert isinstance(shown, Note) and shown.text.startswith("no finding")

