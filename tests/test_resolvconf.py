"""A pod's resolv.conf from its dnsPolicy and dnsConfig (the kubelet's DNS configurer), and
the API's checks of dnsConfig against the kubelet's limits."""

from __future__ import annotations

import pytest

from kbox.api.client import InProcessClient
from kbox.api.errors import ApiError
from kbox.dns.resolvconf import DnsSettings, parse_resolv_conf, pod_dns, resolv_conf

CLUSTER = DnsSettings(cluster_dns=["10.96.0.10"], cluster_domain="cluster.local",
                      node_resolv_conf="nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n")


def pod(ns="shop", **spec):
    return {"metadata": {"name": "p", "namespace": ns},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def test_cluster_first_is_the_default():
    assert resolv_conf(pod(), CLUSTER) == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n"
        "nameserver 10.96.0.10\n"
        "options ndots:5\n")
    # explicitly, and with another domain
    other = DnsSettings(cluster_dns=["10.0.0.10"], cluster_domain="kbox.test")
    assert resolv_conf(pod(ns="default", dnsPolicy="ClusterFirst"), other) == (
        "search default.svc.kbox.test svc.kbox.test kbox.test\n"
        "nameserver 10.0.0.10\n"
        "options ndots:5\n")


def test_default_is_the_nodes_resolv_conf():
    assert resolv_conf(pod(dnsPolicy="Default"), CLUSTER) == (
        "search corp.example\nnameserver 192.0.2.53\noptions edns0\n")
    # kbox's own nodes have no upstream resolver: 127.0.0.1, where nothing answers in a pod
    assert resolv_conf(pod(dnsPolicy="Default"), DnsSettings(cluster_dns=["10.96.0.10"])) == \
        "nameserver 127.0.0.1\n"


def test_host_network_pods():
    # ClusterFirst on the host's network means the node's settings, as the kubelet does ...
    assert resolv_conf(pod(hostNetwork=True), CLUSTER).startswith("search corp.example\n")
    # ... unless the pod asks for the cluster's
    assert "nameserver 10.96.0.10\n" in resolv_conf(
        pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), CLUSTER)


def test_none_takes_only_dns_config():
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": ["192.0.2.1"], "searches": ["a.example"],
                                         "options": [{"name": "ndots", "value": "2"},
                                                     {"name": "edns0"}]})
    assert resolv_conf(p, CLUSTER) == (
        "search a.example\nnameserver 192.0.2.1\noptions ndots:2 edns0\n")


def test_dns_config_is_merged_into_the_policys_base():
    p = pod(dnsConfig={"nameservers": ["192.0.2.1", "10.96.0.10"],
                       "searches": ["svc.cluster.local", "my.example"],
                       "options": [{"name": "ndots", "value": "1"}, {"name": "single-request"}]})
    d = pod_dns(p, CLUSTER)
    assert d.nameservers == ["10.96.0.10", "192.0.2.1"]            # appended, no duplicates
    assert d.searches == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local",
                          "corp.example", "my.example"]
    assert d.options == ["ndots:1", "single-request"]               # the pod's value wins
    assert not d.warnings


def test_kubelet_cuts_what_grows_past_its_limits():
    # the base has one nameserver and four search domains; the API allows 3 + 32 more
    p = pod(dnsConfig={"nameservers": ["192.0.2.1", "192.0.2.2", "192.0.2.3"],
                       "searches": [f"d{i}.example" for i in range(32)]})
    d = pod_dns(p, CLUSTER)
    assert d.nameservers == ["10.96.0.10", "192.0.2.1", "192.0.2.2"]
    assert len(d.searches) == 32 and d.searches[-1] == "d27.example"
    reasons = [r for r, _ in d.warnings]
    assert reasons == ["DNSConfigForming", "DNSConfigForming"]
    assert "the applied nameserver line is: 10.96.0.10 192.0.2.1 192.0.2.2" in d.warnings[0][1]


def test_no_cluster_dns_falls_back_to_default_with_a_warning():
    d = pod_dns(pod(), DnsSettings(cluster_dns=[], node_resolv_conf="nameserver 192.0.2.53\n"))
    assert d.nameservers == ["192.0.2.53"] and d.options == []
    assert d.warnings[0][0] == "MissingClusterDNS"


def test_parse_resolv_conf():
    d = parse_resolv_conf("# comment\nnameserver 1.2.3.4 ; trailing\nsearch a.b. c\n"
                          "search d\noptions ndots:2 rotate\nnameserver 5.6.7.8\n")
    assert d.nameservers == ["1.2.3.4", "5.6.7.8"]
    assert d.searches == ["d"]               # the last search line wins
    assert d.options == ["ndots:2", "rotate"]


# ---- the API ----------------------------------------------------------------------------------
def create(api, spec):
    client = InProcessClient(api)
    return client.create("pods", {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "p", "namespace": "default"},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                           **spec}}, "default")


@pytest.mark.parametrize("spec, message", [
    ({"dnsPolicy": "None"},
     "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"),
    ({"dnsPolicy": "None", "dnsConfig": {"searches": ["a.example"]}},
     "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver"),
    ({"dnsConfig": {"nameservers": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]}},
     "spec.dnsConfig.nameservers: Invalid value: [\"10.0.0.1\",\"10.0.0.2\",\"10.0.0.3\","
     "\"10.0.0.4\"]: must not have more than 3 nameservers"),
    ({"dnsConfig": {"nameservers": ["dns.example"]}},
     'spec.dnsConfig.nameservers[0]: Invalid value: "dns.example": must be a valid IP address'),
    ({"dnsConfig": {"searches": [f"d{i}.example" for i in range(33)]}},
     "must not have more than 32 search paths"),
    ({"dnsConfig": {"searches": ["x" * 60 + f".d{i}" for i in range(32)]}},
     "must not have more than 2048 characters (including spaces) in the search list"),
    ({"dnsConfig": {"searches": ["Not_A.Domain"]}},
     'spec.dnsConfig.searches[0]: Invalid value: "Not_A.Domain": a lowercase RFC 1123 subdomain'),
    ({"dnsConfig": {"options": [{"value": "2"}]}},
     "spec.dnsConfig.options[0]: Required value: Option.Name must not be empty"),
    ({"dnsPolicy": "Cluster"},
     'spec.dnsPolicy: Unsupported value: "Cluster": supported values: "ClusterFirstWithHostNet"'),
])
def test_api_refuses_bad_dns_settings(api, spec, message):
    with pytest.raises(ApiError) as e:
        create(api, spec)
    assert e.value.code == 422
    assert message in str(e.value)


def test_api_accepts_good_dns_settings(api):
    pod = create(api, {"dnsPolicy": "None",
                       "dnsConfig": {"nameservers": ["10.96.0.10"], "searches": ["a.example."],
                                     "options": [{"name": "ndots", "value": "2"}]}})
    assert pod["spec"]["dnsConfig"]["options"] == [{"name": "ndots", "value": "2"}]
