"""Tests against a real local Kubernetes control plane (hack/cluster-up.sh).

How the cluster is built and run: docs/local-cluster.md.
"""
