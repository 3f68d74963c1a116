"""Pilot tests of the dashboard (kbox.tui) against a real in-process sim cluster on a fake
clock: views, keys, drill-down, filters, the prompt (history, completion, errors), the
tree, themes, and the live watch path. `live=False` + `refresh_now()` keeps most of
them deterministic; one test runs the feeds' watch threads."""

from __future__ import annotations

import asyncio
import time

import pytest

from kbox.api.errors import ApiError
from kbox.clock import FakeClock
from kbox.cluster import Cluster
from kbox.config import ClusterConfig

pytest.importorskip("textual")

from kbox.tui.app import KboxApp, screen_text  # noqa: E402
from kbox.tui.screens import ChoiceScreen, ConfirmScreen, HelpScreen, ScaleScreen, TextScreen  # noqa: E402


def deployment(name="web", replicas=3, image="busybox:1.36"):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "app", "image": image, "resources": {
                                      "requests": {"cpu": "500m", "memory": "256Mi"}}}]}}}}


class Sim:
    """A sim cluster on a fake clock; `settle(pred)` moves fake time until pred() holds."""

    def __init__(self, nodes: int = 2) -> None:
        self.clock = FakeClock()
        cfg = ClusterConfig.model_validate({"name": "tui", "runtime": "sim", "seed": 3,
                                            "nodes": {"count": nodes, "cpu": "2", "memory": "4Gi"}})
        self.cluster = Cluster(cfg, clock=self.clock, serve_http=False).start(wait_ready=False)
        self.client = self.cluster.client
        self.settle(lambda: len(self.ready_nodes()) == nodes)

    def ready_nodes(self):
        return [n for n in self.client.list("nodes")["items"]
                if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions", []))]

    def running(self, selector="app=web"):
        return [p for p in self.client.list("pods", "default", label_selector=selector)["items"]
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")]

    def settle(self, pred, step=0.2, limit=400):
        for _ in range(limit):
            if pred():
                return
            self.clock.advance(step)
            time.sleep(0.005)
        raise AssertionError("the cluster did not settle")

    def web(self, replicas=3):
        self.client.create("deployments", deployment("web", replicas), "default")
        self.settle(lambda: len(self.running()) == replicas)

    def app(self, **kw) -> KboxApp:
        kw.setdefault("live", False)
        kw.setdefault("ticks", False)
        kw.setdefault("cursor_blink", False)
        return KboxApp(self.client, ops=self.cluster, clock=self.clock, cluster=self.cluster,
                       meta={"name": "tui", "runtime": "sim", "url": None}, **kw)


@pytest.fixture
def sim():
    s = Sim()
    yield s
    s.cluster.stop()


def drive(app: KboxApp, script, size=(120, 40)) -> None:
    async def main():
        async with app.run_test(size=size) as pilot:
            app.refresh_now()
            await pilot.pause()
            await script(pilot)
    asyncio.run(main())


async def idle(pilot, app: KboxApp, timeout=5.0) -> None:
    """Wait until every command the dashboard started has finished and been shown."""
    deadline = time.monotonic() + timeout
    await pilot.pause()
    while app._commands and time.monotonic() < deadline:
        await pilot.pause(0.02)
    await pilot.pause()


async def type_line(pilot, line: str) -> None:
    await pilot.press("colon")
    app = pilot.app
    app.prompt.value = line
    await pilot.press("enter")


def names(app: KboxApp, column: int = 1) -> list[str]:
    return app.main_view.table.column_texts(column)


# ---- main screen -------------------------------------------------------------------------

def test_main_screen_shows_header_nodes_pods_workloads_activity(sim):
    sim.web()
    app = sim.app()

    async def script(pilot):
        text = screen_text(app)
        assert "tui" in text and "│ sim │" in text and "nodes 2/2" in text
        assert "pods 3 (3 running)" in text and "health ok" in text
        pods = sorted(p["metadata"]["name"] for p in sim.running())
        assert names(app) == pods                            # sorted by namespace, name
        assert app.main_view.table.column_texts(3) == ["Running"] * 3
        assert app.main_view.table.column_texts(7)[0].startswith("tui-worker")
        nodes = app.nodes_pane.column_texts(0)
        assert nodes == ["tui-worker", "tui-worker2"]
        # 3 pods x 500m on two 2-CPU nodes: 2 + 1 pods, 50% and 25% requested
        cpu = sorted(app.nodes_pane.column_texts(3))
        assert cpu == [" 25%", " 50%"]
        assert app.workloads_pane.column_texts(0)[0] == "deploy/web"
        assert app.workloads_pane.column_texts(1)[0] == "3/3"
        assert "Scheduled" in app.activity.lines[-1].text or any(
            "Started" in s.text for s in app.activity.lines)
    drive(app, script)


def test_pods_table_applies_keyed_diffs(sim):
    sim.web()
    app = sim.app()

    async def script(pilot):
        table = app.main_view.table
        before = {k: table.row(k) for k in table.keys()}
        calls = []
        real = table.upsert
        table.upsert = lambda *a: calls.append(a[0]) or real(*a)
        app.refresh_now()                          # nothing changed: nothing touched
        assert calls == []
        sim.client.scale("deployments", "web", 4, "default")
        sim.settle(lambda: len(sim.running()) == 4)
        app.refresh_now()
        new = [k for k in table.keys() if k not in before]
        assert len(new) == 1 and set(calls) == set(new)   # only the new pod's row was written
        assert all(table.row(k) is before[k] for k in before)
        victim = sim.client.get("pods", names(app)[0], "default")
        sim.client.delete("pods", victim["metadata"]["name"], "default", grace_period_seconds=0)
        sim.settle(lambda: not any(p["metadata"]["uid"] == victim["metadata"]["uid"]
                                   for p in sim.client.list("pods")["items"]))
        app.refresh_now()
        assert victim["metadata"]["uid"] not in table.keys()
    drive(app, script)


def test_live_feeds_follow_the_watch(sim):
    app = sim.app(live=True)

    async def script(pilot):
        sim.web(2)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            await pilot.pause(0.05)
            if app.main_view.table.column_texts(3).count("Running") == 2:
                break
        assert app.main_view.table.column_texts(3) == ["Running", "Running"]
        assert app.applied >= 1
    drive(app, script)


# ---- views, filters, drill-down ---------------------------------------------------------------

def test_every_view_by_its_colon_word(sim):
    sim.web()
    sim.client.create("services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}, "default")
    sim.client.create("jobs", {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
                               "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [
                                   {"name": "c", "image": "busybox"}]}}}}, "default")
    app = sim.app()

    async def script(pilot):
        app.refresh_now()
        expect = {":nodes": ("nodes", 0, "tui-worker"), ":deploy": ("deploy", 1, "web"),
                  ":rs": ("rs", 1, "web-"), ":svc": ("svc", 1, "web"), ":ep": ("ep", 1, "web"),
                  ":events": ("events", 2, "Scheduled"), ":ns": ("ns", 0, "default"),
                  ":jobs": ("jobs", 1, "once"), ":ds": ("ds", 1, None), ":pods": ("pods", 1, "web-"),
                  ":po": ("pods", 1, "web-"), ":deployments": ("deploy", 1, "web")}
        for word, (view, col, text) in expect.items():
            await type_line(pilot, word)
            await pilot.pause()
            assert app.main_view.state.name == view, word
            cells = app.main_view.table.column_texts(col)
            if text is None:
                assert cells == []
            else:
                assert any(c.startswith(text) for c in cells), (word, cells)
            assert view in screen_text(app) or app.main_view.spec.resource in screen_text(app)
    drive(app, script)


def test_filter_by_text_and_label_selector(sim):
    sim.web(2)
    sim.client.create("deployments", deployment("api", 1), "default")
    sim.settle(lambda: len(sim.running("app=api")) == 1)
    app = sim.app()

    async def script(pilot):
        assert len(names(app)) == 3
        await type_line(pilot, "/api")
        await pilot.pause()
        assert len(names(app)) == 1 and names(app)[0].startswith("api-")
        await type_line(pilot, "/-l app=web")
        await pilot.pause()
        assert len(names(app)) == 2 and all(n.startswith("web-") for n in names(app))
        assert "/-l app=web" in screen_text(app)
        await type_line(pilot, "/-l =x")                  # a bad selector: said plainly
        await pilot.pause()
        assert "filter:" in app.output.text()
        await pilot.press("escape")                       # hides the output pane
        await pilot.press("escape")                       # clears the filter
        await pilot.pause()
        assert len(names(app)) == 3
    drive(app, script)


def test_drill_down_deploy_rs_pods_and_back(sim):
    sim.web()
    app = sim.app()

    async def script(pilot):
        await type_line(pilot, ":deploy")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert app.main_view.state.name == "rs" and app.main_view.state.scope.title == "deploy/web"
        assert len(names(app)) == 1
        await pilot.press("enter")
        await pilot.pause()
        assert app.main_view.state.name == "pods" and len(names(app)) == 3
        await pilot.press("escape")
        await pilot.pause()
        assert app.main_view.state.name == "rs"
        await pilot.press("escape")
        await pilot.pause()
        assert app.main_view.state.name == "deploy" and names(app) == ["web"]
        # node → its pods
        await type_line(pilot, ":nodes")
        await pilot.pause()
        node = app.main_view.table.column_texts(0)[0]
        await pilot.press("enter")
        await pilot.pause()
        assert app.main_view.state.scope.node == node
        assert set(app.main_view.table.column_texts(7)) == {node}
    drive(app, script)


# ---- keys on rows ---------------------------------------------------------------------------------

def test_describe_yaml_and_logs_screens(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        pod = names(app)[0]
        await pilot.press("d")
        await idle(pilot, app)
        assert isinstance(app.screen, TextScreen)
        assert f"Name:             {pod}" in app.screen.text()
        await pilot.press("escape")
        await pilot.press("y")
        await idle(pilot, app)
        assert "kind: Pod" in app.screen.text() and f"name: {pod}" in app.screen.text()
        await pilot.press("escape")
        await pilot.press("l")
        await pilot.pause(0.3)
        assert isinstance(app.screen, TextScreen) and "logs" in app.screen.title_text
        assert app._commands                            # still following
        await pilot.press("escape")                     # stops the follow and goes back
        await idle(pilot, app)
        assert not app._commands and not isinstance(app.screen, TextScreen)
    drive(app, script)


def test_delete_asks_first(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        pod = names(app)[0]
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and pod in app.screen.question
        await pilot.press("n")
        await pilot.pause()
        assert sim.client.get("pods", pod, "default")["metadata"].get("deletionTimestamp") is None
        await pilot.press("ctrl+d")
        await pilot.press("y")
        await idle(pilot, app)
        assert f'pod "{pod}" deleted' in app.output.text()
        try:
            gone = sim.client.get("pods", pod, "default")["metadata"].get("deletionTimestamp") is not None
        except ApiError:
            gone = True
        assert gone
    drive(app, script)


def test_scale_restart_from_the_deploy_view(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        await type_line(pilot, ":deploy")
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, ScaleScreen)
        inp = app.screen.query_one("#replicas")
        inp.value = ""
        await pilot.press("3", "enter")
        await idle(pilot, app)
        assert sim.client.get("deployments", "web", "default")["spec"]["replicas"] == 3
        assert "deployment.apps/web scaled" in app.output.text()
        await pilot.press("r")
        await idle(pilot, app)
        ann = sim.client.get("deployments", "web", "default")["spec"]["template"]["metadata"].get("annotations") or {}
        assert "kubectl.kubernetes.io/restartedAt" in ann
        await pilot.press("u")                           # cordon does not apply to deployments
        await pilot.pause()
        assert "does not apply" in str(app.hint.render())
    drive(app, script)


def test_cordon_uncordon_and_kill_a_node(sim):
    app = sim.app()

    async def script(pilot):
        await type_line(pilot, ":nodes")
        await pilot.pause()
        node = app.main_view.table.column_texts(0)[0]
        await pilot.press("u")
        await idle(pilot, app)
        assert sim.client.get("nodes", node)["spec"].get("unschedulable") is True
        app.refresh_now()
        await pilot.pause()
        assert "SchedulingDisabled" in app.main_view.table.column_texts(1)[0]
        await pilot.press("u")
        await idle(pilot, app)
        assert not sim.client.get("nodes", node)["spec"].get("unschedulable")
        await pilot.press("k")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceScreen)
        await pilot.click("#choice-kill")
        await idle(pilot, app)
        assert f"node/{node} killed" in app.output.text()
        assert sim.cluster.nodes._agent(node).stopped
    drive(app, script)


def test_keys_can_be_remapped_by_id(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        app.set_keymap({"kbox.describe": "x"})
        await pilot.press("x")
        await idle(pilot, app)
        assert isinstance(app.screen, TextScreen) and "describe" in app.screen.title_text
    drive(app, script)


# ---- the prompt ---------------------------------------------------------------------------------------

def test_prompt_runs_registry_commands_with_or_without_kbox(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        await type_line(pilot, "kbox get deploy")
        await idle(pilot, app)
        assert "NAME   READY   UP-TO-DATE   AVAILABLE" in app.output.text()
        await type_line(pilot, "get nodes -o name")
        await idle(pilot, app)
        assert "node/tui-worker2" in app.output.text()
    drive(app, script)


def test_bad_input_is_shown_plainly_and_the_cluster_keeps_running(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        for line, want in [("gte pods", 'unknown command "gte" for "kbox"'),
                           ("get pods --bogus", "unknown flag: --bogus"),
                           ("get pod nope", 'Error from server (NotFound): pods "nope" not found'),
                           ("scale deploy/web --replicas=-1", "replicas"),
                           ("down", '"down" cannot run inside the dashboard'),
                           (":tree nope", 'deployments.apps "nope" not found'),
                           (":theme nope", "no such theme")]:
            await type_line(pilot, line)
            await idle(pilot, app)
            assert want in app.output.text(), (line, app.output.text()[-300:])
        assert app.is_running
        assert len(sim.client.list("nodes")["items"]) == 2       # the cluster is fine
        sim.client.scale("deployments", "web", 2, "default")
        sim.settle(lambda: len(sim.running()) == 2)
    drive(app, script)


def test_prompt_history_and_tab_completion(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        await type_line(pilot, "get ns")
        await idle(pilot, app)
        await type_line(pilot, "get nodes")
        await idle(pilot, app)
        await pilot.press("colon")
        app.prompt.value = ""
        await pilot.press("up")
        assert app.prompt.value == "get nodes"
        await pilot.press("up")
        assert app.prompt.value == "get ns"
        await pilot.press("down")
        assert app.prompt.value == "get nodes"
        app.prompt.value = "descr"
        await pilot.press("tab")
        assert app.prompt.value == "describe "
        app.prompt.value = "get deploy/"
        await pilot.press("tab")
        assert app.prompt.value == "get deploy/web "
        app.prompt.value = "cordon tui"
        await pilot.press("tab")
        assert app.prompt.value == "cordon tui-worker"
        assert "tui-worker2" in str(app.hint.render())
        app.prompt.value = "get pods --wat"
        await pilot.press("tab")
        assert app.prompt.value == "get pods --watch"
        await pilot.press("escape")
        assert app.prompt.value == "" and not app.prompt.has_focus
    drive(app, script)


def test_streaming_command_stops_on_esc(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        await type_line(pilot, "get pods -w")
        await pilot.pause(0.3)
        assert app.command_running()
        await pilot.press("escape")
        await idle(pilot, app)
        assert not app.command_running()
        assert "web-" in app.output.text()
    drive(app, script)


# ---- tree, help, palette, themes, script -----------------------------------------------------------

def test_tree_follows_a_rolling_update(sim):
    sim.web(2)
    app = sim.app()

    async def script(pilot):
        await pilot.press("t")
        await pilot.pause()
        rows = app.main_view.table.column_texts(0)
        assert rows[0] == "▾ default/web" and rows[1].startswith("  ▾ web-") and len(rows) == 4
        kinds = app.main_view.table.column_texts(1)
        assert kinds == ["Deployment", "RS rev 1", "Pod", "Pod"]
        d = sim.client.get("deployments", "web", "default")
        d["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:1.37"
        sim.client.update("deployments", d, "default")
        sim.clock.advance(0.2)
        time.sleep(0.05)
        app.refresh_now()                               # mid-rollout: two replicasets
        kinds = app.main_view.table.column_texts(1)
        assert "RS rev 2" in kinds and "RS rev 1" in kinds
        assert kinds.index("RS rev 2") < kinds.index("RS rev 1")     # newest first
        sim.settle(lambda: all(p["metadata"]["labels"]["pod-template-hash"] !=
                               d["spec"]["template"]["metadata"].get("labels", {}).get("x")
                               for p in sim.running()) and
                   (sim.client.get("deployments", "web", "default")["status"].get("updatedReplicas") == 2
                    and len(sim.running()) == 2))
        app.refresh_now()
        await pilot.pause()
        text = screen_text(app)
        assert "RS rev 2" in text
        await pilot.press("d")                          # keys work on tree rows too
        await idle(pilot, app)
        assert isinstance(app.screen, TextScreen)
    drive(app, script)


def test_help_lists_keys_views_and_registry_commands(sim):
    app = sim.app()

    async def script(pilot):
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        assert "kbox.delete" in text and "dangerous" in text and ":deploy" in text
        body = str(app.screen.query_one("#help-body").render())
        assert "rollout" in body and "Display one or many resources" in body
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
    drive(app, script)


def test_palette_lists_registry_commands_views_and_themes(sim):
    from kbox.cli.registry import names as registry_names
    from kbox.tui.palette import KboxCommands
    app = sim.app()

    async def script(pilot):
        provider = KboxCommands(app.screen)
        entries = [e[0] for e in provider._entries()]
        for name in registry_names():
            assert f"kbox {name}" in entries
        assert ":deploy" in entries and ":tree" in entries and ":theme kbox-light" in entries
        hits = [h async for h in provider.search("scale")]
        assert hits
        # picking a command puts it in the prompt
        dict((e[0], e[2]) for e in provider._entries())["kbox get"]()
        await pilot.pause()
        assert app.prompt.value == "get " and app.prompt.has_focus
    drive(app, script)


def test_theme_flag_and_runtime_switch(sim):
    app = sim.app(theme="light")

    async def script(pilot):
        assert app.theme == "kbox-light"
        light = app.role_style("status-running")
        await type_line(pilot, ":theme kbox-dark")
        await pilot.pause()
        assert app.theme == "kbox-dark" and app.role_style("status-running") != light
        assert app.theme_variables["node-notready"]
    drive(app, script)


def test_script_runs_inside_the_dashboard(sim, tmp_path):
    script_file = tmp_path / "demo.kbox"
    script_file.write_text("get nodes\nexpect tui-worker\ncreate configmap demo --from-literal=a=1\n")
    app = sim.app(script=str(script_file))

    async def script(pilot):
        deadline = time.monotonic() + 10
        while "script finished" not in app.output.text() and time.monotonic() < deadline:
            await pilot.pause(0.05)
        out = app.output.text()
        assert "$ get nodes" in out and "configmap/demo created" in out and "script finished" in out
        sim.client.get("configmaps", "demo", "default")
    drive(app, script)


def test_row_keys_do_not_act_behind_a_dialog(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        await pilot.press("ctrl+d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("d", "q", "t")               # neither describe, quit nor tree
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen) and app.is_running
        assert app.main_view.state.name == "pods"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert sim.running()                            # nothing was deleted
    drive(app, script)


def test_logs_of_a_deployment_and_quit_keys(sim):
    sim.web(1)
    app = sim.app()

    async def script(pilot):
        await type_line(pilot, ":deploy")
        await pilot.press("l")
        await pilot.pause(0.2)
        assert isinstance(app.screen, TextScreen) and "logs deployment/web" in app.screen.title_text
        await pilot.press("escape")
        await idle(pilot, app)
        await pilot.press("ctrl+p")                       # the palette opens over the dashboard
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"
        await pilot.press("escape")
        await pilot.pause()
        await type_line(pilot, ":q")
        await pilot.pause()
        assert not app.is_running
    drive(app, script)
    app2 = sim.app()

    async def quit_key(pilot):
        await pilot.press("q")
        await pilot.pause()
        assert not app2.is_running
    drive(app2, quit_key)
