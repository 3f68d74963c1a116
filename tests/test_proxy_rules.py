"""kube-proxy's pure half: Services + Endpoints -> rule table -> iptables-restore text,
the same table's choice of backend, and the pod routes' diff.

The text is also fed to the real iptables-restore in a throwaway network namespace
(`unshare -n`, when this machine allows it), so a rule the kernel would refuse fails here.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections import Counter

import pytest

from kbox.node.proxy import (
    DEFAULT_AFFINITY_SECONDS,
    AffinityState,
    build_rules,
    hooks_script,
    render_iptables,
    service_chains,
)
from kbox.node.routes import base_rules_script, route_changes

CIDR = "10.244.0.0/16"


def svc(name="web", ns="default", *, ports=None, type_=None, cluster_ip="10.96.0.20", **spec):
    s = {"clusterIP": cluster_ip, "ports": ports or [{"name": "http", "port": 80,
                                                      "targetPort": "web", "protocol": "TCP"}]}
    if type_:
        s["type"] = type_
    s.update(spec)
    return {"metadata": {"name": name, "namespace": ns}, "spec": s}


def addr(ip, pod, node):
    return {"ip": ip, "nodeName": node, "targetRef": {"kind": "Pod", "namespace": "default", "name": pod}}


def eps(name="web", ns="default", *, ready=(), not_ready=(), ports=None):
    sub = {"ports": ports or [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    if ready:
        sub["addresses"] = list(ready)
    if not_ready:
        sub["notReadyAddresses"] = list(not_ready)
    return {"metadata": {"name": name, "namespace": ns}, "subsets": [sub]}


THREE = [addr("10.244.1.5", "web-a", "n1"), addr("10.244.2.5", "web-b", "n2"),
         addr("10.244.3.5", "web-c", "n3")]


# ---- the table ----------------------------------------------------------------------------

def test_only_ready_addresses_become_backends_with_named_target_ports_resolved():
    (rule,) = build_rules([svc()], [eps(ready=THREE[:2], not_ready=[THREE[2]])])
    assert rule.key == "default/web:http" and rule.cluster_ip == "10.96.0.20"
    assert rule.target_port == "web"
    # the named targetPort "web" is resolved by the Endpoints' port of the same service port name
    assert [(b.address, b.pod, b.node) for b in rule.backends] == [
        ("10.244.1.5:8080", "default/web-a", "n1"), ("10.244.2.5:8080", "default/web-b", "n2")]
    assert rule.node_port is None and rule.affinity_seconds is None


def test_each_port_and_protocol_is_its_own_rule_and_ports_match_by_name():
    dns = svc("kube-dns", "kube-system", cluster_ip="10.96.0.10", ports=[
        {"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"}])
    ep = {"metadata": {"name": "kube-dns", "namespace": "kube-system"}, "subsets": [{
        "addresses": [{"ip": "172.18.0.1"}],           # selectorless: no pod behind it
        "ports": [{"name": "dns", "port": 5353, "protocol": "UDP"},
                  {"name": "dns-tcp", "port": 5354, "protocol": "TCP"}]}]}
    udp, tcp = build_rules([dns], [ep])
    assert (udp.key, udp.protocol, udp.backends[0].address, udp.backends[0].pod) == \
        ("kube-system/kube-dns:dns", "UDP", "172.18.0.1:5353", None)
    assert (tcp.protocol, tcp.backends[0].address) == ("TCP", "172.18.0.1:5354")
    assert udp.svc_chain != tcp.svc_chain
    text = render_iptables([udp, tcp], cluster_cidr=CIDR)
    assert "-d 10.96.0.10/32 -p udp -m udp --dport 53 -j " + udp.svc_chain in text
    assert "-p udp -m udp -j DNAT --to-destination 172.18.0.1:5353" in text


def test_external_name_and_headless_services_get_no_rules():
    services = [svc("alias", type_="ExternalName", cluster_ip=None, externalName="example.test"),
                svc("headless", cluster_ip="None"), svc("web")]
    assert [r.name for r in build_rules(services, [])] == ["web"]


def test_node_ports_and_affinity_come_from_the_spec():
    np_svc = svc(type_="NodePort", sessionAffinity="ClientIP",
                 ports=[{"name": "http", "port": 80, "targetPort": 8080, "nodePort": 30080}])
    (rule,) = build_rules([np_svc], [eps(ready=THREE)])
    assert rule.node_port == 30080 and rule.affinity_seconds == DEFAULT_AFFINITY_SECONDS == 10800
    timed = svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    assert build_rules([timed], [])[0].affinity_seconds == 60
    # a ClusterIP service keeps no node port even if one is written
    (plain,) = build_rules([svc(ports=[{"port": 80, "nodePort": 30081}])], [])
    assert plain.node_port is None and plain.key == "default/web" and plain.target_port == "80"


# ---- the iptables text --------------------------------------------------------------------

def _lines(text: str, chain: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(f"-A {chain} ")]


def test_cluster_ip_chain_spreads_over_every_ready_endpoint_with_one_nth_each():
    (rule,) = build_rules([svc()], [eps(ready=THREE)])
    text = render_iptables([rule], cluster_cidr=CIDR)
    hook = _lines(text, "KUBE-SERVICES")
    assert hook[0] == ('-A KUBE-SERVICES -m comment --comment "default/web:http cluster IP" '
                       f'-d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j {rule.svc_chain}')
    assert "--dst-type LOCAL -j KUBE-NODEPORTS" in hook[-1]          # the last rule, always
    svc_rules = _lines(text, rule.svc_chain)
    assert "! -s 10.244.0.0/16" in svc_rules[0] and svc_rules[0].endswith("-j KUBE-MARK-MASQ")
    seps = [rule.sep_chain(b) for b in rule.backends]
    assert svc_rules[1].endswith(f"-m statistic --mode random --probability 0.3333333333 -j {seps[0]}")
    assert svc_rules[2].endswith(f"-m statistic --mode random --probability 0.5000000000 -j {seps[1]}")
    assert svc_rules[3].endswith(f'"default/web:http -> 10.244.3.5:8080" -j {seps[2]}')
    for b, sep in zip(rule.backends, seps):
        hair, dnat = _lines(text, sep)
        assert f"-s {b.ip}/32 -j KUBE-MARK-MASQ" in hair               # hairpin is masqueraded
        assert dnat.endswith(f"-p tcp -m tcp -j DNAT --to-destination {b.ip}:8080")
    # the masquerade machinery
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000" in text
    assert "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN" in text
    assert '"kubernetes service traffic requiring SNAT" -j MASQUERADE' in text


def test_a_service_without_ready_endpoints_is_rejected_in_the_filter_table():
    np_svc = svc(type_="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    (rule,) = build_rules([np_svc], [eps(not_ready=THREE)])
    assert rule.backends == ()
    text = render_iptables([rule], cluster_cidr=CIDR)
    filt = text.split("*nat")[0]
    assert ('-A KUBE-SERVICES -m comment --comment "default/web:http has no endpoints" '
            '-d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j REJECT') in filt
    assert ('-A KUBE-EXTERNAL-SERVICES -m comment --comment "default/web:http has no endpoints" '
            '-m addrtype --dst-type LOCAL -p tcp -m tcp --dport 30080 -j REJECT') in filt
    assert rule.svc_chain not in text and "DNAT" not in text


def test_node_port_goes_through_an_ext_chain_that_masquerades():
    np_svc = svc(type_="NodePort", ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    (rule,) = build_rules([np_svc], [eps(ready=THREE)])
    text = render_iptables([rule], cluster_cidr=CIDR)
    assert _lines(text, "KUBE-NODEPORTS") == [
        f"-A KUBE-NODEPORTS -m comment --comment default/web:http -p tcp -m tcp --dport 30080 "
        f"-j {rule.ext_chain}"]
    ext = _lines(text, rule.ext_chain)
    assert ext[0].endswith("-j KUBE-MARK-MASQ") and ext[1] == f"-A {rule.ext_chain} -j {rule.svc_chain}"


def test_external_traffic_policy_local_sends_outside_clients_only_to_the_nodes_own_pods():
    np_svc = svc(type_="NodePort", externalTrafficPolicy="Local",
                 ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    (rule,) = build_rules([np_svc], [eps(ready=THREE)])
    on_n2 = render_iptables([rule], cluster_cidr=CIDR, node="n2")
    ext = _lines(on_n2, rule.ext_chain)
    assert ext[0].endswith(f"-s 10.244.0.0/16 -j {rule.svc_chain}")   # pods: cluster-wide
    assert ext[1] == f"-A {rule.ext_chain} -j {rule.local_chain}"
    (only,) = _lines(on_n2, rule.local_chain)
    assert only.endswith(f"-j {rule.sep_chain(rule.backends[1])}")      # web-b, on n2
    elsewhere = render_iptables([rule], cluster_cidr=CIDR, node="n9")
    assert _lines(elsewhere, rule.ext_chain)[1].endswith('"default/web:http has no local endpoints" -j DROP')
    assert "KUBE-MARK-MASQ" not in "".join(ext)


def test_session_affinity_checks_recent_lists_before_the_random_rules():
    aff = svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 300}})
    (rule,) = build_rules([aff], [eps(ready=THREE[:2])])
    text = render_iptables([rule], cluster_cidr=CIDR)
    svc_rules = _lines(text, rule.svc_chain)
    a, b = (rule.sep_chain(x) for x in rule.backends)
    assert f"-m recent --name {a} --mask 255.255.255.255 --rsource --rcheck --seconds 300 --reap -j {a}" \
        in svc_rules[1]
    assert f"--name {b} " in svc_rules[2] and "statistic" in svc_rules[3]
    assert f"-m recent --name {a} --mask 255.255.255.255 --rsource --set -m tcp -j DNAT" in text


def test_gone_services_chains_are_flushed_and_deleted():
    (old,) = build_rules([svc("old")], [eps("old", ready=THREE[:1])])
    (web,) = build_rules([svc()], [eps(ready=THREE[:1])])
    first = render_iptables([old, web], cluster_cidr=CIDR)
    had = service_chains(first)
    assert had == {old.svc_chain, old.sep_chain(old.backends[0]), web.svc_chain,
                   web.sep_chain(web.backends[0])}
    second = render_iptables([web], cluster_cidr=CIDR, stale_chains=had | {"DOCKER", "KUBE-SERVICES"})
    assert f"-X {old.svc_chain}" in second and f"-X {old.sep_chain(old.backends[0])}" in second
    assert f":{old.svc_chain} - [0:0]" in second                      # flushed first, in the restore
    assert "-X DOCKER" not in second and "-X KUBE-SERVICES" not in second
    assert service_chains(second) == {web.svc_chain, web.sep_chain(web.backends[0])}


def _netns_ok() -> bool:
    if not shutil.which("unshare") or not shutil.which("iptables-restore"):
        return False
    return subprocess.run(["unshare", "-n", "iptables", "-w", "-L", "-n"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _netns_ok(), reason="needs root, unshare and iptables")
def test_the_real_iptables_restore_takes_the_text_and_the_hooks_are_idempotent(tmp_path):
    services = [svc(type_="NodePort", sessionAffinity="ClientIP",
                    ports=[{"name": "http", "port": 80, "targetPort": "web", "nodePort": 30080}]),
                svc("local", cluster_ip="10.96.0.21", type_="NodePort", externalTrafficPolicy="Local",
                    ports=[{"name": "http", "port": 80, "nodePort": 30081}]),
                svc("empty", cluster_ip="10.96.0.22", ports=[{"port": 53, "protocol": "UDP"}])]
    rules = build_rules(services, [eps(ready=THREE), eps("local", ready=THREE)])
    first = tmp_path / "first.rules"
    first.write_text(render_iptables(rules, cluster_cidr=CIDR, node="n1"))
    second = tmp_path / "second.rules"        # "web" deleted: its chains go
    second.write_text(render_iptables(rules[1:], cluster_cidr=CIDR, node="n1",
                                      stale_chains=service_chains(first.read_text())))
    script = (f"iptables-restore -w --noflush < {first}\n{hooks_script()}\n{hooks_script()}\n"
              f"iptables-restore -w --noflush < {second}\n"
              f"{base_rules_script(CIDR)}\n{base_rules_script(CIDR)}\niptables-save")
    run = subprocess.run(["unshare", "-n", "sh", "-ec", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    out = run.stdout
    web = rules[0]
    assert web.svc_chain not in out                    # deleted with the service
    local = rules[1]
    assert f"-A KUBE-NODEPORTS -p tcp -m comment --comment default/local:http -m tcp --dport 30081 " \
           f"-j {local.ext_chain}" in out or f"--dport 30081 -j {local.ext_chain}" in out
    # each hook exactly once, even after two runs of the hooks script
    assert out.count("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES") == 1
    assert out.count("-j KUBE-POSTROUTING") == 1
    assert out.count("-j DOCKER-USER") == 1
    assert out.count("-A DOCKER-USER -d 10.244.0.0/16 -j ACCEPT") == 1
    assert out.count("kbox: pod to pod keeps its source") == 1



@pytest.mark.skipif(not _netns_ok(), reason="needs root, unshare and iptables")
def test_the_forward_hook_goes_back_ahead_of_rules_put_on_top_of_it(tmp_path):
    """A node's engine puts its jumps on top of FORWARD when it makes the pod network, after
    kube-proxy's first sync; the next sync moves kube-proxy's REJECT check back to the top,
    else the pod range's DOCKER-USER ACCEPT would let pods' packets pass it."""
    rules = tmp_path / "rules"
    rules.write_text(render_iptables(build_rules([svc("empty", cluster_ip="10.96.0.22")], []),
                                     cluster_cidr=CIDR))
    script = (f"iptables-restore -w --noflush < {rules}\n{hooks_script()}\n"
              f"iptables -w -N DOCKER-USER\niptables -w -I FORWARD -j DOCKER-USER\n"
              f"{base_rules_script(CIDR)}\niptables -w -I FORWARD -j ACCEPT\n"
              f"iptables -w -S FORWARD\necho --\n{hooks_script()}\n{hooks_script()}\niptables -w -S FORWARD")
    run = subprocess.run(["unshare", "-n", "sh", "-ec", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    before, after = (part.splitlines()[1:] for part in run.stdout.split("--\n"))
    hook = '-A FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes service portals" ' \
           '-j KUBE-SERVICES'
    assert before.index(hook) == 2                   # behind the ACCEPT and DOCKER-USER
    assert after[0] == hook and after.count(hook) == 1
    assert after[1:] == [line for line in before if line != hook]

# ---- choosing a backend --------------------------------------------------------------------

def test_random_choice_gives_every_ready_endpoint_its_share():
    (rule,) = build_rules([svc()], [eps(ready=THREE, not_ready=[addr("10.244.4.5", "web-d", "n4")])])
    rng = random.Random(3)
    got = Counter(rule.pick(rng).pod for _ in range(6000))
    assert set(got) == {"default/web-a", "default/web-b", "default/web-c"}
    assert all(1700 < n < 2300 for n in got.values()), got


def test_client_ip_affinity_sticks_until_its_timeout():
    aff = svc(sessionAffinity="ClientIP", sessionAffinityConfig={"clientIP": {"timeoutSeconds": 30}})
    (rule,) = build_rules([aff], [eps(ready=THREE)])
    rng, state = random.Random(5), AffinityState()
    first = rule.pick(rng, client_ip="10.244.9.9", affinity=state, now=0)
    assert {rule.pick(rng, client_ip="10.244.9.9", affinity=state, now=t) for t in range(1, 60, 2)} \
        == {first}                            # each request refreshes the entry
    others = {rule.pick(rng, client_ip=f"10.244.8.{i}", affinity=state, now=60) for i in range(40)}
    assert len(others) == 3                   # other clients still spread
    after = {rule.pick(rng, client_ip="10.244.9.9", affinity=AffinityState(), now=0) for _ in range(50)}
    assert len(after) == 3                    # a fresh client table: random again
    # the entry expires when the client stays away longer than the timeout
    state2 = AffinityState()
    picks = set()
    for i in range(30):
        picks.add(rule.pick(rng, client_ip="10.244.9.9", affinity=state2, now=i * 100))
    assert len(picks) > 1


def test_no_ready_endpoint_means_no_backend_and_local_policy_stays_on_the_node():
    (empty,) = build_rules([svc()], [eps(not_ready=THREE)])
    assert empty.pick(random.Random(1)) is None
    np_svc = svc(type_="NodePort", externalTrafficPolicy="Local",
                 ports=[{"name": "http", "port": 80, "nodePort": 30080}])
    (rule,) = build_rules([np_svc], [eps(ready=THREE)])
    rng = random.Random(2)
    assert {rule.pick(rng, node_port_on="n3").pod for _ in range(30)} == {"default/web-c"}
    assert rule.pick(rng, node_port_on="elsewhere") is None
    assert len({rule.pick(rng).pod for _ in range(60)}) == 3        # the cluster IP: everywhere


# ---- the pod routes ----------------------------------------------------------------------

ROUTES = """default via 172.18.0.1 dev eth0
unreachable 10.96.0.0/12
unreachable 10.244.0.0/16
10.244.1.0/24 dev br-1a2b proto kernel scope link src 10.244.1.1
10.244.2.0/24 via 172.18.0.3 dev eth0
10.244.3.0/24 via 172.18.0.9 dev eth0
10.244.7.0/24 via 172.18.0.7 dev eth0
172.18.0.0/16 dev eth0 proto kernel scope link src 172.18.0.2
"""


def test_route_changes_add_missing_peers_fix_moved_ones_and_drop_gone_ones():
    peers = {"10.244.2.0/24": "172.18.0.3", "10.244.3.0/24": "172.18.0.4", "10.244.4.0/24": "172.18.0.5"}
    assert route_changes(ROUTES, peers, CIDR) == [
        ["ip", "route", "del", "10.244.3.0/24", "via", "172.18.0.9"],
        ["ip", "route", "del", "10.244.7.0/24", "via", "172.18.0.7"],
        ["ip", "route", "replace", "10.244.3.0/24", "via", "172.18.0.4"],
        ["ip", "route", "replace", "10.244.4.0/24", "via", "172.18.0.5"],
    ]
    # up to date: nothing to do; the default route, black holes and own bridge are never touched
    same = {"10.244.2.0/24": "172.18.0.3", "10.244.3.0/24": "172.18.0.9", "10.244.7.0/24": "172.18.0.7"}
    assert route_changes(ROUTES, same, CIDR) == []
    assert route_changes(ROUTES, {}, CIDR) == [
        ["ip", "route", "del", c, "via", v] for c, v in sorted(same.items())]
