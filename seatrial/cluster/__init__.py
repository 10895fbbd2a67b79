"""The local cluster: pinned binaries built from Go modules, a supervised control plane, KWOK pools."""

from seatrial.cluster.local import LocalCluster, Ports, Status

__all__ = ["LocalCluster", "Ports", "Status"]
