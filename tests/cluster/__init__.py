"""Tests against a real local Kubernetes control plane (hack/cluster-up.sh, DESIGN §7)."""
