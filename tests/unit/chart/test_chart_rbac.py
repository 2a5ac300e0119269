"""The chart's RBAC: exactly the operator's API calls, cluster-wide or per watched namespace."""

from __future__ import annotations

from typing import Any

from tests.unit.chart.conftest import Helm, by_kind, one

# What the operator does (operator/sentiric_operator/kubeapi.py, handlers.py, and kopf's own
# watching, finalizers, progress annotations and events), as (group, resource) -> verbs.
EXPECTED_NAMESPACED = {
    ("llm.sentiric.ai", "llmprofiles"): {"get", "list", "watch", "patch"},
    ("llm.sentiric.ai", "llmprofiles/status"): {"patch"},
    ("llm.sentiric.ai", "llmprofiles/finalizers"): {"update"},
    ("", "configmaps"): {"list", "watch", "create", "patch"},
    ("", "services"): {"list", "watch", "create", "patch"},
    ("", "persistentvolumeclaims"): {"create", "patch"},
    ("apps", "deployments"): {"list", "watch", "create", "patch"},
    ("", "pods"): {"list", "watch"},
    ("monitoring.coreos.com", "servicemonitors"): {"create", "patch", "delete"},
    ("inference.networking.k8s.io", "inferencepools"): {"create", "patch", "delete"},
    ("policy", "poddisruptionbudgets"): {"create", "patch", "delete"},
    ("autoscaling", "horizontalpodautoscalers"): {"create", "patch", "delete"},
    ("", "events"): {"create"},
}
EXPECTED_CLUSTER_ONLY = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
}


def _grants(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def _assert_no_wildcards(objects: list[dict[str, Any]]) -> None:
    for role in by_kind(objects, "ClusterRole") + by_kind(objects, "Role"):
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[key], (role["metadata"]["name"], rule)
            # Never rights over RBAC itself or secrets.
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
            assert "secrets" not in rule["resources"]
    for binding in by_kind(objects, "ClusterRoleBinding") + by_kind(objects, "RoleBinding"):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")


def test_cluster_wide_by_default(helm: Helm) -> None:
    objects = helm.template()
    _assert_no_wildcards(objects)
    assert not by_kind(objects, "Role") and not by_kind(objects, "RoleBinding")
    role = one(objects, "ClusterRole")
    assert _grants(role["rules"]) == EXPECTED_NAMESPACED | EXPECTED_CLUSTER_ONLY
    binding = one(objects, "ClusterRoleBinding")
    account = one(objects, "ServiceAccount")["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["name"], "namespace": account["namespace"]}
    ]


def test_watch_namespaces_get_roles_and_nothing_namespaced_cluster_wide(helm: Helm) -> None:
    objects = helm.template("--set", "watchNamespaces={team-a,team-b}")
    _assert_no_wildcards(objects)
    cluster_role = one(objects, "ClusterRole")
    # kopf follows the watched namespaces appearing and going.
    assert _grants(cluster_role["rules"]) == EXPECTED_CLUSTER_ONLY | {
        ("", "namespaces"): {"list", "watch"}
    }
    roles = {r["metadata"]["namespace"]: r for r in by_kind(objects, "Role")}
    bindings = {b["metadata"]["namespace"]: b for b in by_kind(objects, "RoleBinding")}
    assert set(roles) == set(bindings) == {"team-a", "team-b"}
    account = one(objects, "ServiceAccount")["metadata"]
    for namespace, role in roles.items():
        assert _grants(role["rules"]) == EXPECTED_NAMESPACED
        binding = bindings[namespace]
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        # The subject lives in the release namespace, not the watched one.
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["name"], "namespace": "llm-system"}
        ]


def test_rbac_and_service_account_can_be_left_to_the_administrator(helm: Helm) -> None:
    objects = helm.template(
        "--set",
        "rbac.create=false",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "serviceAccount.name=llm-operator",
    )
    assert not {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"} & {
        obj["kind"] for obj in objects
    }
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "llm-operator"


def test_a_named_service_account_is_bound(helm: Helm) -> None:
    objects = helm.template("--set", "serviceAccount.name=llm-operator")
    assert one(objects, "ServiceAccount")["metadata"]["name"] == "llm-operator"
    assert one(objects, "ClusterRoleBinding")["subjects"][0]["name"] == "llm-operator"
