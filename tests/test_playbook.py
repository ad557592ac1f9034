"""The playbook's tables: the phases and their notebooks, the actions and the backends that carry them out."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from irkit import actions, config, playbook
from irkit.actions import kube as kube_actions
from irkit.actions.model import Step
from irkit.errors import ActionError
from irkit.phases import PHASES
from irkit.rules import plan
from irkit.sources import k8s


def test_the_notebooks_carry_exactly_the_installed_kernelspec():
    installed = KernelSpecManager().get_kernel_spec("python3")
    for phase in PHASES:
        spec = json.loads(phase.path.read_text())["metadata"]["kernelspec"]
        assert (spec["name"], spec["display_name"], spec["language"]) == (
            "python3", installed.display_name, installed.language), phase.notebook


def test_the_phases_are_numbered_1_to_n_each_with_its_notebook_and_module():
    assert playbook.NUMBERS == tuple(range(1, len(PHASES) + 1))
    for number in playbook.NUMBERS:
        phase = playbook.phase(number)
        assert phase.number == number and phase.path.is_file(), phase
        assert phase.notebook.startswith(f"{number:02d}-")
        assert importlib.util.find_spec(f"irkit.phases.{phase.module}") is not None, phase.module


def test_a_phase_reads_and_requires_only_earlier_phases():
    for phase in PHASES:
        assert all(p < phase.number for p in phase.reads), phase
        assert set(phase.requires) <= set(phase.reads), phase  # what must have succeeded is also read


def test_every_system_has_a_backend_and_every_action_a_system():
    assert set(actions.BACKENDS) == set(playbook.SYSTEMS)
    assert {spec.system for spec in playbook.ACTIONS.values()} <= set(playbook.SYSTEMS)
    for backend in actions.BACKENDS.values():
        for method in ("prepare", "state", "apply", "verify", "undo", "verify_undo"):
            assert callable(getattr(backend, method)), (backend, method)


def test_the_kubernetes_backend_knows_exactly_the_kubernetes_actions_of_the_catalogue():
    catalogue = {name for name, spec in playbook.ACTIONS.items() if spec.system == "kubernetes"}
    assert set(kube_actions.ACTIONS) == catalogue


def test_every_action_is_allowed_by_default_and_the_plan_draws_from_the_same_catalogue():
    assert config.Config().allowed_actions == tuple(playbook.ACTIONS)
    assert plan.ACTIONS == tuple(playbook.ACTIONS)
    assert all(name == spec.name for name, spec in playbook.ACTIONS.items())


@pytest.mark.parametrize("name", [n for n, spec in playbook.ACTIONS.items() if not spec.undoable])
def test_an_action_the_catalogue_says_cannot_be_undone_refuses_its_undo_touching_nothing(
        name: str, closed_port: str, tmp_path: Path):
    kubeconfig = tmp_path / "kubeconfig"  # a cluster that does not answer: an undo that asked it would fail here
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "down",
        "clusters": [{"name": "down", "cluster": {"server": f"http://{closed_port}"}}],
        "users": [{"name": "down", "user": {"token": "t"}}],
        "contexts": [{"name": "down", "context": {"cluster": "down", "user": "down", "namespace": "prod"}}]}))
    cfg = config.load(env={}, kubeconfig=str(kubeconfig))
    spec = playbook.ACTIONS[name]
    step = Step(id=f"{name}-abc123", action=name, target="x", system=spec.system, why="", command="",
                params={"namespace": "prod", "deployment": "backend-deployment", "pod": "backend-1", "pid": 7})
    systems = actions.Systems(cfg, kube=k8s.connect(cfg))
    with pytest.raises(ActionError, match="has no undo"):
        actions.BACKENDS[spec.system].undo(systems, step)
