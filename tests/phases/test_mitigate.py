"""Phase 3's cells: prepared steps, the headless confirmation, and the JupyterLab buttons, against the emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import pytest

from irkit import config as irconfig
from irkit.display import views
from irkit.errors import ConfirmationError
from irkit.evidence import records as R
from irkit.lab.kube import KubeLab, build_cluster
from irkit.phases import mitigate
from irkit.phases.incident import Incident, open_incident
from irkit.rules.plan import Mitigation
from tests.conftest import CLUSTER, NAMESPACE

SCALE = Mitigation("scale", "deployment/frontend-deployment", "traffic is 3x its baseline", "kubectl scale ...",
                   "overload: frontend", params={"namespace": NAMESPACE, "deployment": "frontend-deployment",
                                                "replicas": 5})


@pytest.fixture()
def lab() -> Iterator[KubeLab]:
    with KubeLab() as kube:
        kube.load(build_cluster(CLUSTER, NAMESPACE))
        yield kube


@pytest.fixture()
def inc(lab: KubeLab, tmp_path: Path) -> Iterator[Incident]:
    config = tmp_path / "irkit.toml"
    config.write_text(irconfig.to_toml({"namespace": NAMESPACE, "action_timeout": 2.0, "kubeconfig": str(
        lab.write_kubeconfig(tmp_path / "kubeconfig", NAMESPACE))}))
    incident = open_incident("INC-M", 3, run_dir=str(tmp_path / "run"), config_path=str(config))
    incident.record(R.MITIGATIONS, [SCALE])
    yield incident
    incident.close()


def replicas(lab: KubeLab) -> int:
    return next(o.raw["spec"]["replicas"] for k, o in lab.emulator.objects.items()
                if k[0].plural == "deployments" and k[2] == "frontend-deployment")


def buttons(box: Any) -> list[widgets.Button]:
    found, todo = [], [box]
    while todo:
        item = todo.pop()
        if isinstance(item, widgets.Button):
            found.append(item)
        todo.extend(getattr(item, "children", ()))
    return sorted(found, key=lambda b: b.description)


def test_without_execute_mitigations_every_step_is_a_dry_run(inc: Incident, lab: KubeLab):
    shown = mitigate.prepared_steps(inc)
    [step] = inc.current(R.STEPS)
    assert step.id in shown._repr_mimebundle_()["text/plain"] and '"replicas": 5' in shown._repr_mimebundle_()[
        "text/plain"]
    frame = mitigate.apply_confirmed(inc, False, f"INC-M:{step.id}")  # confirmed, but not enabled
    assert list(frame["status"]) == ["dry-run"] and replicas(lab) == 2
    assert isinstance(mitigate.controls(inc, False), views.Note)


def test_the_headless_confirmation_applies_exactly_the_named_step(inc: Incident, lab: KubeLab):
    mitigate.prepared_steps(inc)
    [step] = inc.current(R.STEPS)
    with pytest.raises(ConfirmationError, match="this plan does not have"):
        mitigate.apply_confirmed(inc, True, "INC-M:scale-abcdef")
    assert replicas(lab) == 2
    frame = mitigate.apply_confirmed(inc, True, f"INC-M:{step.id}")
    assert list(frame["status"]) == ["applied"] and replicas(lab) == 5
    [planned] = inc.current(R.MITIGATIONS)
    assert planned.status == "applied"  # the plan says what became of it, for the post-mortem


def test_the_buttons_apply_then_undo_and_record_who_and_when(inc: Incident, lab: KubeLab):
    mitigate.prepared_steps(inc)
    box = mitigate.controls(inc, True)
    apply_button, undo_button = buttons(box)
    assert apply_button.description.startswith("Apply scale-") and undo_button.disabled
    apply_button.click()
    assert replicas(lab) == 5 and apply_button.disabled and not undo_button.disabled
    undo_button.click()
    assert replicas(lab) == 2
    applied, undone = inc.current(R.OUTCOMES)
    assert (applied.status, undone.status) == ("applied", "undone")
    assert applied.confirmation["via"] == "widget" and applied.confirmation["by"] == mitigate.who()
    assert applied.confirmation["at"] <= undone.confirmation["at"]


def test_undo_is_offered_only_where_something_can_be_restored_and_each_step_shows_its_state_now(
        inc: Incident, lab: KubeLab):
    restart = Mitigation("rollout-restart", "deployment/frontend-deployment", "restart its connections",
                         "kubectl rollout restart ...", "db-saturation: postgres",
                         params={"namespace": NAMESPACE, "deployment": "frontend-deployment"})
    inc.record(R.MITIGATIONS, [restart])
    mitigate.prepared_steps(inc)
    box = mitigate.controls(inc, True)
    apply_button, undo_button = buttons(box)
    assert undo_button.description == "No undo" and undo_button.disabled
    assert "not applied" in _states(box)[0]
    apply_button.click()
    outcome = inc.current(R.OUTCOMES)[-1]
    assert undo_button.disabled  # a restart has nothing to restore: no button that would record undo-failed
    assert f"now: <b>{outcome.status}</b> by {mitigate.who()}" in _states(box)[0]
    again = mitigate.controls(inc, True)  # the cell run again (or the notebook reopened) shows the same state
    assert f"<b>{outcome.status}</b>" in _states(again)[0]


def _states(box: Any) -> list[str]:
    found, todo = [], [box]
    while todo:
        item = todo.pop()
        if isinstance(item, widgets.HTML) and item.value.startswith("<i>now:"):
            found.append(item.value)
        todo.extend(getattr(item, "children", ()))
    return found
