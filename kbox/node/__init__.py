"""Node agents: the kubelet (agent.py) for each node, run by one NodePool.

`from kbox.node.pool import NodePool` is what the cluster builds.
"""
