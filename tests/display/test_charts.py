"""The charts: deploy markers, links to the full data, downsampling that keeps spikes."""

from __future__ import annotations

import pandas as pd


def test_error_ratio_chart_marks_every_deployment_and_links_its_full_data():
    from irkit.display import charts
    now = pd.Timestamp.now(tz="UTC")
    frame = pd.DataFrame({"value": [0.01, 0.12], "service": ["backend", "backend"]},
                         index=[now - pd.Timedelta(minutes=10), now])
    deploys = pd.DataFrame([
        {"deployment": "backend-deployment", "revision": 2, "created": now - pd.Timedelta(minutes=8)},
        {"deployment": "frontend-deployment", "revision": 5, "created": now - pd.Timedelta(minutes=3)},
        {"deployment": "backend-deployment", "revision": 1, "created": now - pd.Timedelta(days=9)},
    ])
    chart = charts.error_ratio_chart(frame, deploys=deploys).with_data("data/phase1-error-ratio.csv")
    texts = [a.text for a in chart.figure.layout.annotations]
    assert "deploy backend r2" in texts and "deploy frontend r5" in texts
    # A deploy from days ago would stretch the axis and squeeze the incident into a sliver.
    assert "deploy backend r1" not in texts
    assert pd.Timestamp(chart.figure.layout.xaxis.range[0]) == frame.index[0]
    assert '<a href="data/phase1-error-ratio.csv">' in chart._repr_mimebundle_()["text/html"]



def test_downsampling_bounds_the_points_and_keeps_the_spike():
    from irkit.display import charts
    index = pd.date_range("2026-11-28", periods=20_000, freq="s", tz="UTC")
    values = [0.01] * 20_000
    values[12_345] = 0.9
    small = charts.downsample(pd.DataFrame({"value": values}, index=index), max_points=600)
    assert len(small) <= 600 and small["value"].max() == 0.9



def test_the_bands_say_the_configured_thresholds():
    from irkit.display import charts
    now = pd.Timestamp.now(tz="UTC")
    frame = pd.DataFrame({"value": [0.01, 0.03]}, index=[now - pd.Timedelta(minutes=1), now])
    texts = [a.text for a in charts.error_ratio_chart(frame, moderate=0.02, high=0.04, label=None)
             .figure.layout.annotations]
    assert "SEV-3 2-4%" in texts and "SEV-2 >4%" in texts


def test_the_cross_layer_chart_lines_up_every_layer_on_one_axis_and_says_which_layer_saw_nothing():
    from irkit.display import charts
    now = pd.Timestamp.now(tz="UTC")
    index = pd.date_range(now - pd.Timedelta(minutes=30), now, freq="1min")
    errors = pd.DataFrame({"value": [0.01] * 20 + [0.2] * 11, "service": "backend"}, index=index)
    deploy = now - pd.Timedelta(minutes=11)
    events = [{"reason": "BackOff", "object": "Pod/backend-deployment-5d9c7-abcde", "count": 7, "message": "restarting",
               "first_seen": (now - pd.Timedelta(minutes=9)).isoformat(), "last_seen": now.isoformat()}]
    later = (now + pd.Timedelta(minutes=3)).isoformat()  # phase 4 after the fix, past the series
    samples = [{"at": later, "waiting": 0, "roots": []}]
    chart = charts.cross_layer_chart(
        errors=errors, latency=None, kube_events=events, terminations=[], lock_samples=samples,
        deploys=pd.DataFrame([{"deployment": "backend-deployment", "revision": 4, "created": deploy},
                              {"deployment": "backend-deployment", "revision": 3, "created": now - pd.Timedelta(days=3)}]),
        incident_start=now - pd.Timedelta(minutes=10))
    fig = chart.figure
    texts = [a.text for a in fig.layout.annotations]
    assert "no latency series" in texts  # a layer without data says so; it is not drawn as flat
    assert "deploy backend r4" in texts and "deploy backend r3" not in texts
    lines = [s for s in fig.layout.shapes if s.type == "line" and s.x0 == s.x1]
    # The deploy and the onset cross all four rows, so cause and effect line up.
    assert sorted({s.xref for s in lines}) == ["x", "x2", "x3", "x4"] and len(lines) == 8
    assert pd.Timestamp(fig.layout.xaxis.range[1]) == pd.Timestamp(later)  # stretched to the last sample
    [lane] = [t for t in fig.data if t.yaxis == "y3"]
    assert lane.y[0] == "BackOff backend-deployment" and "x7" in lane.text[0]


def test_charts_stay_the_same_size_however_big_the_cluster():
    """5,000 pods, 50 services: the charts draw what a responder reads, not one mark per object."""
    from irkit.display import charts
    pods = pd.DataFrame({"pod": [f"svc-{i:04d}" for i in range(5000)], "phase": "Running", "all_ready": True,
                         "restarts": 0, "waiting_reason": None, "last_termination_reason": None})
    pods.loc[[7, 4000], "restarts"] = [3, 9]
    pods.loc[4000, "waiting_reason"] = "CrashLoopBackOff"
    fig = charts.pod_status_chart(pods).figure
    assert sorted(x for t in fig.data for x in t.x) == ["svc-0007", "svc-4000"]
    assert "2 of 5000 pods drawn" in " ".join(a.text for a in fig.layout.annotations)
    now = pd.Timestamp.now(tz="UTC")
    index = pd.date_range(now - pd.Timedelta(hours=1), now, freq="1min")
    frame = pd.concat([pd.DataFrame({"value": 0.001 * i, "service": f"s{i:02d}"}, index=index) for i in range(50)])
    fig = charts.error_ratio_chart(frame).figure
    assert sorted(t.name for t in fig.data) == [f"s{i:02d}" for i in range(40, 50)]  # the ten that rose highest
    assert "the 10 highest of 50 services drawn" in " ".join(str(a.text) for a in fig.layout.annotations)


def test_a_hundred_deep_lock_chain_draws_the_sessions_nearest_its_root():
    from irkit.display import charts
    from irkit.rules.locks import build_lock_graph
    edges = pd.DataFrame({"blocked_pid": range(2, 102), "blocking_pid": range(1, 101)})
    graph = build_lock_graph(edges, pd.DataFrame({"pid": range(1, 102), "state": "active"}))
    fig = charts.lock_graph_chart(graph).figure
    [nodes] = fig.data
    assert len(nodes.x) == charts.MAX_LOCK_NODES and 1 in [int(t.split()[2]) for t in nodes.text if "ROOT" in t]
    assert max(nodes.x) == charts.MAX_LOCK_NODES - 1  # depths 0..59: the root and the 59 nearest it
    assert "60 of 101 sessions drawn" in " ".join(str(a.text) for a in fig.layout.annotations)
    assert len(graph.tree().splitlines()) == 101  # the tree keeps every session
