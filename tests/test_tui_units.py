"""Pure parts of the dashboard, without an app: what a prompt line means, tab completion,
the `/` filter, ResourceTable's keyed diff (sorted rows, cursor kept on its key, lazy rows),
and node usage sums."""

from __future__ import annotations

import pytest

pytest.importorskip("textual")

from kbox.api.errors import ApiError  # noqa: E402
from kbox.tui.panes import Filter  # noqa: E402
from kbox.tui.prompt import Completer, classify  # noqa: E402
from kbox.tui.table import Age, Bar, Column, LazyRow, ResourceTable, Span, cell_text  # noqa: E402
from kbox.tui.views import NodeUsage  # noqa: E402


def test_classify_prompt_lines():
    assert classify(":pods").kind == "view" and classify("deploy").word == "deploy"
    assert classify(":po").word == "po"
    assert classify("/web -l app=web") == classify("/web -l app=web") and classify("/x").arg == "x"
    p = classify(":theme kbox-light")
    assert (p.kind, p.word, p.arg) == ("dashboard", "theme", "kbox-light")
    assert classify(":q").kind == "dashboard"
    for line in ("get pods", "kbox get pods", ":get pods", "pods -n x"):
        assert classify(line).kind == "command"
    assert classify(":get pods").line == "get pods"
    assert classify("  ").kind == "empty"


def test_completion_from_registry_and_caches():
    caches = {"pods": ["web-1", "web-2"], "nodes": ["kbox-worker", "kbox-worker2"],
              "deployments": ["web"], "namespaces": ["default", "kube-system"]}
    c = Completer(lambda r: caches.get(r, []), lambda: ["kbox-dark", "kbox-light"])
    assert c.complete("ge") == ("get ", [])
    assert c.complete("kbox ge") == ("kbox get ", [])
    assert c.complete("get deploy/") == ("get deploy/web ", [])
    assert c.complete("get pods w") == ("get pods web-", ["web-1", "web-2"])
    assert c.complete("logs w")[0] == "logs web-"
    assert c.complete("get pods -n k") == ("get pods -n kube-system ", [])
    assert c.complete("cordon kbox-worker") == ("cordon kbox-worker", ["kbox-worker", "kbox-worker2"])
    assert c.complete("node k") == ("node kill ", [])
    assert c.complete("node kill kbox-worker2") == ("node kill kbox-worker2 ", [])
    assert c.complete("rollout rest") == ("rollout restart ", [])
    assert c.complete("scale --rep") == ("scale --replicas ", [])
    assert c.complete(":the") == (":theme ", [])
    assert c.complete(":theme kbox-d") == (":theme kbox-dark ", [])
    assert c.complete(":tree w") == (":tree web ", [])
    assert c.complete("nosuchverb x") == ("nosuchverb x", [])


def test_filter_text_and_selector():
    obj = {"metadata": {"labels": {"app": "web", "tier": "front"}}}
    assert Filter.parse("web").matches(obj, ("web-1", "Running"), 0)
    assert not Filter.parse("api").matches(obj, ("web-1", "Running"), 0)
    assert Filter.parse("RUN").matches(obj, ("web-1", "Running"), 0)          # case-insensitive
    f = Filter.parse("-l app in (web, api)")
    assert f.text == "" and f.matches(obj, ("x",), 0)
    assert not Filter.parse("-l app=api").matches(obj, ("x",), 0)
    assert Filter.parse("web -l tier=front").matches(obj, ("web-1",), 0)
    assert not Filter.parse("db -l tier=front").matches(obj, ("web-1",), 0)
    with pytest.raises(ApiError):
        Filter.parse("-l =x")
    assert not Filter.parse("")


def test_cells_render_as_kubectl_text():
    assert cell_text(Age(100.0), 165.0) == "65s"
    assert cell_text(Age(None), 1.0) == "<unknown>"
    assert cell_text(Span(10.0, 70.0), 999.0) == "60s" and cell_text(Span(10.0), 40.0) == "30s"
    assert cell_text(("Running", "status-running"), 0) == "Running"
    assert cell_text(Bar(0.5, " 50%"), 0) == " 50%"


def test_table_keyed_diff_keeps_order_and_cursor():
    t = ResourceTable([Column("NAME", 10), Column("STATUS", 8)])
    t.post_message = lambda m: True          # no app: messages go nowhere
    assert t.apply([("u2", ("ns", "b"), ("b", "Pending")), ("u1", ("ns", "a"), ("a", "Running"))]) == 2
    assert t.keys() == ["u1", "u2"] and t.cursor_key == "u1"
    t.move_cursor("u2")
    assert t.apply([("u0", ("ns", "0"), ("0", "Running"))]) == 1        # inserted before the cursor
    assert t.keys() == ["u0", "u1", "u2"] and t.cursor_key == "u2" and t.cursor_row == 2
    assert t.apply([("u2", ("ns", "b"), ("b", "Pending"))]) == 0        # unchanged: nothing to do
    assert t.apply([("u2", ("ns", "b"), ("b", "Running"))]) == 1
    assert t.column_texts(1) == ["Running", "Running", "Running"]
    assert t.apply([], ["u2"]) == 1 and t.cursor_key == "u1"            # cursor moves to a neighbour
    assert t.replace_all([("u1", ("ns", "a"), ("a", "Running"))]) == 1
    assert t.keys() == ["u1"]


def test_lazy_rows_are_made_when_read_and_compared_by_object():
    made = []

    def make(obj, ctx):
        made.append(obj["name"])
        return (obj["name"], obj["state"])

    t = ResourceTable([Column("NAME", 10), Column("STATUS", 8)])
    t.post_message = lambda m: True
    a, b = {"name": "a", "state": "Running"}, {"name": "b", "state": "Pending"}
    assert t.apply([("ua", "a", LazyRow(make, a)), ("ub", "b", LazyRow(make, b))]) == 2
    assert made == []                                   # nothing drawn or read yet
    assert t.row("ub") == ("b", "Pending") and made == ["b"]
    assert t.row("ub") == ("b", "Pending") and made == ["b"]   # made once
    assert t.apply([("ub", "b", LazyRow(make, b))]) == 0      # the same object: unchanged
    b2 = dict(b, state="Running")
    assert t.apply([("ub", "b", LazyRow(make, b2))]) == 1     # a new object: a changed row
    assert t.column_texts(1) == ["Running", "Running"] and sorted(made) == ["a", "b", "b"]


def test_node_usage_names_the_nodes_whose_sums_moved():
    def pod(node, cpu="100m", phase="Running"):
        return {"spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": cpu,
                                                                                     "memory": "1Mi"}}}]},
                "status": {"phase": phase}}

    u = NodeUsage()
    u.update("p1", pod("n1"))
    u.update("p2", pod("n2"))
    assert u.take_touched() == {"n1", "n2"} and u.take_touched() == set()
    u.update("p1", pod("n1"))                            # the same requests: nothing moved
    assert u.take_touched() == set()
    u.update("p1", pod("n1", phase="Succeeded"))         # a finished pod frees its requests
    assert u.take_touched() == {"n1"} and u.of("n1") == (0, 0, 0)
    u.update("p2", None)
    assert u.take_touched() == {"n2"} and u.of("n2") == (0, 0, 0)
