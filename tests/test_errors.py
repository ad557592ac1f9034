"""The one exception tree: the classes are the tree the module's docstring draws, a source that is down is told
apart from one request failing, and an error reads as one line in a notebook."""

from __future__ import annotations

import inspect
import re

import pytest

from irkit import errors

_LINE = re.compile(r"^    ((?:│   |    )*)(?:[├└]── )?([A-Z]\w+(?:Error|Timeout|Unavailable|NoData))\b(.*)$")


def _drawn_tree() -> dict[str, tuple[str | None, str]]:
    """Each class of the docstring's tree: its parent in the drawing and the rest of its line."""
    drawn: dict[str, tuple[str | None, str]] = {}
    parents: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        match = _LINE.match(line)
        if match is None:
            continue
        depth = len(match.group(1)) // 4 + (1 if "──" in line else 0)
        del parents[depth:]
        drawn[match.group(2)] = (parents[-1] if parents else None, match.group(3))
        parents.append(match.group(2))
    return drawn


CLASSES = {name: cls for name, cls in vars(errors).items()
           if inspect.isclass(cls) and issubclass(cls, errors.IrkitError)}


def test_the_classes_are_the_tree_the_docstring_draws():
    drawn = _drawn_tree()
    assert set(drawn) == set(CLASSES) == set(errors.__all__)
    for name, (parent, rest) in drawn.items():
        cls = CLASSES[name]
        if parent is None:
            assert cls is errors.IrkitError
            continue
        assert cls.__bases__[0] is CLASSES[parent], name
        also = re.search(r"\(also a (\w+)\)", rest)
        assert also is None or issubclass(cls, CLASSES[also.group(1)]), name


def test_every_sources_timeout_and_unreachable_error_is_caught_as_the_generic_one():
    """The docstring's promise: catch SourceTimeout to handle "the system hung" for every source at once."""
    for name, cls in CLASSES.items():
        if name.endswith("Timeout"):
            assert issubclass(cls, errors.SourceTimeout), name
        if name.endswith("Unavailable"):
            assert issubclass(cls, errors.SourceUnavailable), name


@pytest.mark.parametrize(("cls", "down"), [
    (errors.PostgresTimeout, True), (errors.PostgresUnavailable, True), (errors.PrometheusTimeout, True),
    (errors.KubernetesUnavailable, True), (errors.PostgresError, False), (errors.KubernetesError, False),
])
def test_a_timeout_or_an_unreachable_source_is_down_and_a_failed_request_is_not(cls: type[errors.SourceError],
                                                                                 down: bool):
    error = cls("PostgreSQL at 127.0.0.1:5432", "lock graph", 2.5, "check pg_dsn")
    assert error.down is down
    assert str(error) == "PostgreSQL at 127.0.0.1:5432: lock graph failed after 2.5 s: check pg_dsn"


def test_a_metric_that_matches_no_series_is_a_finding_not_a_source_that_is_down():
    error = errors.PrometheusNoData("Prometheus at http://prom:9090", "error ratio", 0.1, "check prom_requests_metric")
    assert not error.down and isinstance(error, errors.PrometheusError)


def test_a_request_not_sent_to_a_source_that_is_down_keeps_its_kind_and_says_why():
    first = errors.KubernetesTimeout("Kubernetes API at https://k8s", "list pods", 10.0, "check the VPN")
    again = first.not_retried()
    assert type(again) is errors.KubernetesTimeout and again.down and again.elapsed == 0.0
    assert isinstance(again, errors.SourceTimeout)  # caught as "the system hung", like the first
    assert str(again) == ("Kubernetes API at https://k8s: not asked again yet, it did not answer earlier: list pods "
                          "failed after 10.0 s: check the VPN")


def test_in_a_notebook_an_error_is_one_line_instead_of_a_traceback():
    error = errors.ConfigError("irkit.toml: pg_dsn is not a valid libpq DSN\n  (missing '=')\tfix it")
    assert error._render_traceback_() == ["irkit: irkit.toml: pg_dsn is not a valid libpq DSN (missing '=') fix it"]
