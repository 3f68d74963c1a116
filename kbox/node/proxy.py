"""kube-proxy's place on each node.

Service routing (ClusterIP, NodePort, iptables DNAT with random balancing)
is the networking issue's work; the node agent will start one ServiceProxy
per node from here. On sim nodes there is nothing to program yet.
"""

from __future__ import annotations


class ServiceProxy:
    def __init__(self, node_name: str) -> None:
        self.node_name = node_name

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass
