"""The cluster DNS (CoreDNS's place) and pods' resolv.conf (the kubelet's DNS part).

- `records`: the names CoreDNS's kubernetes plugin serves, from informer caches;
- `server`: a UDP + TCP DNS server over them (dnspython for the wire format);
- `resolvconf`: a pod's /etc/resolv.conf from its dnsPolicy and dnsConfig.

`start_cluster_dns` puts the first two together for `kbox.cluster.Cluster`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

CLUSTER_DOMAIN = "cluster.local"      # the kubelet's --cluster-domain, CoreDNS's zone
DNS_SERVICE_NAMESPACE = "kube-system"
DNS_SERVICE_NAME = "kube-dns"


def dns_service_ip(service_subnet: str) -> str:
    """The cluster DNS Service's address: the tenth of the service range, as kubeadm picks it
    (10.96.0.10 in 10.96.0.0/12)."""
    return str(ipaddress.ip_network(service_subnet)[10])


def start_cluster_dns(informers: Any, *, host: str, port: int, nameserver_ip: str | None,
                      reverse_ranges: tuple[str, ...], pod_mode: str = "insecure"):
    """A started DnsServer answering from `informers`' caches."""
    from kbox.dns.records import ClusterRecords, ClusterView
    from kbox.dns.server import DnsServer
    view = ClusterView(informers, pods=pod_mode == "verified")
    records = ClusterRecords(view, nameserver_ip=nameserver_ip, pod_mode=pod_mode,
                             reverse_ranges=reverse_ranges)
    return DnsServer(records, host, port).start()


__all__ = ["CLUSTER_DOMAIN", "dns_service_ip", "start_cluster_dns", "DNS_SERVICE_NAMESPACE", "DNS_SERVICE_NAME"]
