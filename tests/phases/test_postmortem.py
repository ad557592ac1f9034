"""Phase 5 on plain records: the resolution message never claims resolved early."""

from __future__ import annotations


def test_resolution_message_says_resolved_only_once_recovery_is_validated(tmp_path):
    import json

    from irkit.config import Config
    from irkit.phases.incident import Incident
    from irkit.phases.postmortem import resolution_message

    def phase(n: int, records: dict) -> None:
        (tmp_path / f"phase-{n}.json").write_text(json.dumps({"records": records}))

    phase(1, {"affected": ["backend"]})
    phase(2, {"findings": [{"kind": "error-spike", "subject": "backend", "detail": "12% fail"},
                           {"kind": "lock-root", "subject": "pid 7", "detail": "idle in transaction"}]})
    phase(3, {"mitigations": [{"command": "SELECT pg_terminate_backend(7);", "status": "applied"}]})
    phase(4, {"verdict": {"recovered": True, "failed": []}})
    message = resolution_message(Incident("INC-9", 5, tmp_path, Config()))
    # What happened in plain words, from the cause, not the symptom.
    assert message.startswith("Subject: [RESOLVED] Database writes blocked by an idle database transaction")
    assert "has been resolved as of" in message and "Resolution: SELECT pg_terminate_backend(7);" in message
    phase(4, {"verdict": {"recovered": False, "failed": ["error ratio backend: 12%"]}})
    message = resolution_message(Incident("INC-9", 5, tmp_path, Config()))
    assert message.startswith("DRAFT, do not send: recovery is not validated (error ratio backend: 12%)")

