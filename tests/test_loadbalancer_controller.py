"""The LoadBalancer controller on sim nodes: status.loadBalancer on 127.0.0.1, its events,
a host port already taken (by a socket this test binds, or by another Service), and the
status cleared when the Service changes type or goes."""

from __future__ import annotations

import socket

import pytest

try:
    from test_nodelifecycle_env import NS, Env
except ImportError:  # pragma: no cover - when tests/ is a package
    from tests.test_nodelifecycle_env import NS, Env

from kbox.controllers.loadbalancer import LoadBalancerController


@pytest.fixture
def env():
    e = Env()
    e.lb = e.add(LoadBalancerController)
    e.start()
    yield e
    e.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lb_service(name: str, *ports: int, type_: str = "LoadBalancer") -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"type": type_, "selector": {"app": name},
                     "ports": [{"name": f"p{p}", "port": p, "targetPort": 8080} for p in ports]}}


def status(env, name: str) -> dict:
    return env.client.get("services", name, NS)["status"]["loadBalancer"]


def reasons(env, name: str) -> list[tuple[str, str, str]]:
    evs = sorted((e for e in env.events() if e["involvedObject"]["name"] == name),
                 key=lambda e: e["metadata"]["name"])
    return [(e["type"], e["reason"], e["message"]) for e in evs]


def test_a_load_balancer_gets_127_0_0_1_with_its_ports_and_events(env):
    a, b = free_port(), free_port()
    env.client.create("services", lb_service("web", a, b), NS)
    env.settle()
    assert status(env, "web") == {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP", "ports": [
        {"port": a, "protocol": "TCP"}, {"port": b, "protocol": "TCP"}]}]}
    evs = reasons(env, "web")
    assert [r for _, r, _ in evs] == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]
    assert evs[1][2] == ("Ensured load balancer (sim nodes: the address is assigned but nothing "
                         "listens on the host)")
    # kubectl's EXTERNAL-IP column shows the address
    from kbox.api.tables import _external_ip
    assert _external_ip(env.client.get("services", "web", NS)) == "127.0.0.1"
    # nothing changed: nothing written, no new events
    patched = env.client.patch("services", "web", {"metadata": {"annotations": {"x": "y"}}},
                               "merge", NS)
    env.settle()
    svc = env.client.get("services", "web", NS)
    assert svc["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    assert len(reasons(env, "web")) == 2


def test_other_types_are_left_alone(env):
    env.client.create("services", lb_service("plain", free_port(), type_="ClusterIP"), NS)
    env.client.create("services", lb_service("np", free_port(), type_="NodePort"), NS)
    env.settle()
    assert status(env, "plain") == {} and status(env, "np") == {}
    assert reasons(env, "plain") == [] and reasons(env, "np") == []


def test_a_port_taken_on_the_host_shows_in_the_port_status_and_a_warning(env):
    taken, free = free_port(), free_port()
    holder = socket.socket()
    holder.bind(("127.0.0.1", taken))
    holder.listen()
    try:
        env.client.create("services", lb_service("web", taken, free), NS)
        env.settle()
        assert status(env, "web")["ingress"] == [{"ip": "127.0.0.1", "ipMode": "VIP", "ports": [
            {"port": taken, "protocol": "TCP", "error": "kbox.io/HostPortInUse"},
            {"port": free, "protocol": "TCP"}]}]
        warn = [e for e in reasons(env, "web") if e[0] == "Warning"]
        assert warn == [("Warning", "SyncLoadBalancerFailed",
                         f"Error syncing load balancer: failed to ensure load balancer: port "
                         f"{taken}/TCP: listen tcp 127.0.0.1:{taken}: bind: address already in use")]
        assert "EnsuredLoadBalancer" not in [r for _, r, _ in reasons(env, "web")]
    finally:
        holder.close()
    # the controller tries again after its back-off, and the port is free by then
    env.advance(5.0)
    assert status(env, "web")["ingress"][0]["ports"] == [
        {"port": taken, "protocol": "TCP"}, {"port": free, "protocol": "TCP"}]
    assert reasons(env, "web")[-1][1] == "EnsuredLoadBalancer"


def test_two_services_cannot_share_a_host_port(env):
    port = free_port()
    env.client.create("services", lb_service("first", port), NS)
    env.settle()
    env.client.create("services", lb_service("second", port), NS)
    env.settle()
    assert status(env, "first")["ingress"][0]["ports"] == [{"port": port, "protocol": "TCP"}]
    assert status(env, "second")["ingress"][0]["ports"] == [
        {"port": port, "protocol": "TCP", "error": "kbox.io/HostPortInUse"}]
    assert reasons(env, "second")[-1][1:] == (
        "SyncLoadBalancerFailed", f"Error syncing load balancer: failed to ensure load balancer: "
        f"port {port}/TCP: 127.0.0.1:{port} is already used by Service {NS}/first")
    # the first one goes: the second gets the port at once (no back-off wait)
    env.client.delete("services", "first", NS)
    env.settle()
    assert status(env, "second")["ingress"][0]["ports"] == [{"port": port, "protocol": "TCP"}]
    assert reasons(env, "second")[-1][1] == "EnsuredLoadBalancer"
    assert [r for _, r, _ in reasons(env, "first")][-2:] == ["DeletingLoadBalancer",
                                                              "DeletedLoadBalancer"]


def set_type(env, name: str, type_: str) -> None:
    # the type-dependent fields go with the type (kube-apiserver drops them by itself since 1.20)
    svc = env.client.get("services", name, NS)
    svc["spec"]["type"] = type_
    if type_ == "ClusterIP":
        for p in svc["spec"]["ports"]:
            p.pop("nodePort", None)
        for f in ("allocateLoadBalancerNodePorts", "externalTrafficPolicy"):
            svc["spec"].pop(f, None)
    env.client.update("services", svc, NS)


def test_changing_the_type_clears_the_status_and_back(env):
    port = free_port()
    env.client.create("services", lb_service("web", port), NS)
    env.settle()
    assert status(env, "web")["ingress"]
    set_type(env, "web", "ClusterIP")
    env.settle()
    svc = env.client.get("services", "web", NS)
    assert svc["status"]["loadBalancer"] == {}
    assert [r for _, r, _ in reasons(env, "web")][-3:] == [
        "Type", "DeletingLoadBalancer", "DeletedLoadBalancer"]
    assert ("Normal", "Type", "LoadBalancer -> ClusterIP") in reasons(env, "web")
    # the port is free again for another Service
    env.client.create("services", lb_service("other", port), NS)
    env.settle()
    assert status(env, "other")["ingress"][0]["ports"] == [{"port": port, "protocol": "TCP"}]
    # back to LoadBalancer: ensured again, its port now held by "other"
    env.client.patch("services", "web", {"spec": {"type": "LoadBalancer"}}, "merge", NS)
    env.settle()
    assert ("Normal", "Type", "ClusterIP -> LoadBalancer") in reasons(env, "web")
    assert status(env, "web")["ingress"][0]["ports"][0]["error"] == "kbox.io/HostPortInUse"


def test_a_port_change_moves_the_host_port(env):
    a, b = free_port(), free_port()
    env.client.create("services", lb_service("web", a), NS)
    env.settle()
    env.client.patch("services", "web", {"spec": {"ports": [
        {"name": "pb", "port": b, "targetPort": 8080}]}}, "merge", NS)
    env.settle()
    assert status(env, "web")["ingress"][0]["ports"] == [{"port": b, "protocol": "TCP"}]
    env.client.create("services", lb_service("other", a), NS)     # a is free again
    env.settle()
    assert "error" not in status(env, "other")["ingress"][0]["ports"][0]
    # ensured again for the new port (one Event, counted twice, as the recorder folds repeats)
    [ensuring] = [e for e in env.events("EnsuringLoadBalancer")
                  if e["involvedObject"]["name"] == "web"]
    assert ensuring["count"] == 2


def test_ports_it_cannot_forward_say_why(env):
    port, udp = free_port(), free_port()
    svc = lb_service("web", port)
    svc["spec"]["allocateLoadBalancerNodePorts"] = False
    svc["spec"]["ports"].append({"name": "dns", "port": udp, "protocol": "UDP"})
    env.client.create("services", svc, NS)
    env.settle()
    # the sim checks nothing behind the port, yet the status is the same as on docker nodes
    ports = status(env, "web")["ingress"][0]["ports"]
    assert ports == [{"port": port, "protocol": "TCP", "error": "kbox.io/NoNodePort"},
                     {"port": udp, "protocol": "UDP", "error": "kbox.io/ProtocolNotSupported"}]
    [warn] = [e for e in reasons(env, "web") if e[0] == "Warning"]
    assert "(spec.allocateLoadBalancerNodePorts is false)" in warn[2]
    assert "kbox forwards only TCP from the host" in warn[2]


def test_deleting_the_service_releases_its_port(env):
    port = free_port()
    env.client.create("services", lb_service("web", port), NS)
    env.settle()
    env.client.delete("services", "web", NS)
    env.settle()
    assert env.lb._claims == {}
    env.client.create("services", lb_service("again", port), NS)
    env.settle()
    assert "error" not in status(env, "again")["ingress"][0]["ports"][0]


def test_with_real_listeners_connections_reach_a_ready_nodes_node_port():
    """The docker runtime's provider (HostPorts) under the controller, without containers:
    the "node" is 127.0.0.1 and an echo server holds the Service's node port there, so the
    LoadBalancer port forwards to it, and the node port itself cannot be had on the host."""
    import socketserver
    import threading

    from kbox.runtime.hostports import HostPorts

    class Echo(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            while data := self.request.recv(65536):
                self.request.sendall(data)

    node_port = next(p for p in range(31000, 32000) if _free(p))
    echo = socketserver.ThreadingTCPServer(("127.0.0.1", node_port), Echo)
    echo.daemon_threads = True
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    provider = HostPorts(node_address=lambda node: "127.0.0.1")
    e = Env()
    e.lb = e.add(LoadBalancerController, provider=provider)
    e.start()
    try:
        e.make_node("n1")
        e.make_node("n2", ready=False)
        e.settle()
        assert provider.targets == ["127.0.0.1"]          # only the Ready node
        port = free_port()
        svc = lb_service("web", port)
        svc["spec"]["ports"][0]["nodePort"] = node_port
        e.client.create("services", svc, NS)
        e.settle()
        assert status(e, "web")["ingress"][0]["ports"] == [{"port": port, "protocol": "TCP"}]
        assert provider.listening() == {port: node_port}
        ensured = [m for _, r, m in reasons(e, "web") if r == "EnsuredLoadBalancer"]
        assert ensured == ["Ensured load balancer"]        # real listeners: no sim note
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"through the load balancer")
            assert s.recv(100) == b"through the load balancer"
        [warn] = [m for t, r, m in reasons(e, "web") if r == "HostPortUnavailable"]
        assert warn == (f"node port not reachable from the host: port {node_port}/TCP: listen tcp "
                        f"127.0.0.1:{node_port}: bind: address already in use")
        # the Ready node set changes: the listeners follow, and the Service hears of it
        e.heartbeat("n2", ready=True)
        e.settle()
        assert provider.targets == ["127.0.0.1", "127.0.0.1"]
        assert "UpdatedLoadBalancer" in [r for _, r, _ in reasons(e, "web")]
        e.client.delete("services", "web", NS)
        e.settle()
        assert provider.listening() == {}
    finally:
        e.close()
        provider.stop()
        echo.shutdown()
        echo.server_close()


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False
