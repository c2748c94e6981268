"""The Kubernetes manifests (deploy/kubernetes): rendered by kustomize as an operator would,
valid against the schemas of the Kubernetes API and the Prometheus Operator, and true to
the service they run: its settings, its routes, its probes and its drain."""

from __future__ import annotations

import copy
import ipaddress
import os
import re
import shutil
from pathlib import Path
from typing import Any

import botocore.session
import jsonschema
import pytest

from config.settings import Settings, load_settings
from tests.deploy.manifests import (
    BASE,
    KUBERNETES,
    PRODUCTION,
    Manifest,
    every,
    find,
    pod_specs,
    render,
    validate,
)
from tests.deploy.settings_names import unknown_settings
from tests.service_support import running_service

RENDERS = {"base": BASE, "production": PRODUCTION}
PLACEHOLDER_NETWORKS = [
    ipaddress.ip_network(net) for net in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]
"""The documentation ranges (RFC 5737) the base's placeholders come from."""
FIRST = "callrec/applied-first"
OPERATIONS_ROUTES = {"/healthz", "/readyz", "/metrics"}
# A plausible value for each secret file the production overlay names (never a real one).
SAMPLE_SECRETS = {
    "database-url": "postgresql://callrec:example@db.example:5432/callrec",
    "aws-credentials": "[default]\naws_access_key_id = EXAMPLE\naws_secret_access_key = x\n",
    "oidc-client-secret": "an-example-client-secret",
    "push-secrets": "pbx=an-example-push-secret-of-some-length",
    "twilio-auth-token": "an-example-twilio-auth-token",
}


def production() -> tuple[Manifest, ...]:
    return render(PRODUCTION)


def containers(spec: Manifest) -> list[Manifest]:
    return list(spec["containers"]) + list(spec.get("initContainers", []))


@pytest.mark.parametrize("which", sorted(RENDERS))
def test_every_object_is_valid_against_the_schema_of_its_kind(which: str) -> None:
    manifests = render(RENDERS[which])
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Job", "Service", "Ingress", "PodDisruptionBudget"} <= kinds
    assert {"NetworkPolicy", "ConfigMap", "ServiceMonitor", "Probe", "PrometheusRule"} <= kinds
    for manifest in manifests:
        validate(manifest)


def test_the_validation_refuses_a_misspelt_field_in_a_core_object_and_in_a_custom_one() -> None:
    # The checks above would prove nothing if an unknown field or kind passed silently.
    deployment = copy.deepcopy(find(production(), "Deployment"))
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(jsonschema.ValidationError):
        validate(deployment)
    monitor = copy.deepcopy(find(production(), "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrape_interval"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)
    rule = copy.deepcopy(find(production(), "PrometheusRule"))
    del rule["spec"]["groups"][0]["name"]
    with pytest.raises(jsonschema.ValidationError):
        validate(rule)
    with pytest.raises(AssertionError, match="no schema"):
        validate({"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor"})


def test_the_overlay_replaces_every_placeholder_of_the_base() -> None:
    base, site = render(BASE), production()
    for policy in every(site, "NetworkPolicy"):
        for rule in policy["spec"].get("egress", []):
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    network = ipaddress.ip_network(peer["ipBlock"]["cidr"])
                    assert not any(network.overlaps(p) for p in PLACEHOLDER_NETWORKS), policy
    hosts = [find(m, "Ingress")["spec"]["rules"][0]["host"] for m in (base, site)]
    assert hosts[0] != hosts[1]
    assert find(site, "Ingress")["spec"]["tls"][0]["hosts"] == [hosts[1]]
    probes = [find(m, "Probe")["spec"] for m in (base, site)]
    assert probes[0]["prober"] != probes[1]["prober"]
    assert probes[0]["targets"] != probes[1]["targets"]
    assert _images(base) == {"callrec:0.1.0"}  # the project's version (pyproject.toml)
    (image,) = _images(site)
    assert image != "callrec:0.1.0"


def _images(manifests: tuple[Manifest, ...]) -> set[str]:
    return {c["image"] for _, spec in pod_specs(manifests) for c in containers(spec)}


def test_the_replicas_are_probed_and_drain_before_they_are_killed() -> None:
    site = production()
    deployment = find(site, "Deployment")
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spec = deployment["spec"]["template"]["spec"]
    (server,) = spec["containers"]
    (port,) = server["ports"]
    assert (port["name"], port["containerPort"]) == ("http", 8080)
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert server[probe]["httpGet"] == {"path": path, "port": "http"}
    assert server["startupProbe"]["httpGet"]["path"] == "/healthz"
    # The image has python and no shell: the pause is python's.
    command = server["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    compile(command[2], "preStop", "exec")
    pause = re.fullmatch(r"import time; time\.sleep\((\d+)\)", command[2])
    assert pause is not None
    grace = _settings_of(site)["CALLREC_SHUTDOWN_GRACE"]
    shutdown = Settings(shutdown_grace=grace).shutdown_grace.total_seconds()
    assert spec["terminationGracePeriodSeconds"] > int(pause.group(1)) + shutdown


def test_the_pods_run_unprivileged_on_a_read_only_root_with_their_data_in_empty_dirs() -> None:
    for name, spec in pod_specs(production()):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["securityContext"]["runAsGroup"] == 10001, name
        assert spec["securityContext"]["fsGroup"] == 10001, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        # Service links would add CALLREC_-prefixed variables of Kubernetes' own.
        assert spec["enableServiceLinks"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in containers(spec):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert {"requests", "limits"} <= container["resources"].keys(), name
            mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
            # The image's CALLREC_DATA_DIR; the only writable place besides the spool.
            assert "emptyDir" in mounts["/var/lib/callrec"], name
    spec = find(production(), "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    (server,) = spec["containers"]
    (spool,) = [m for m in server["volumeMounts"] if m["mountPath"] == "/var/lib/callrec/spool"]
    assert volumes[spool["name"]]["emptyDir"]["medium"] == "Memory"
    assert "sizeLimit" in volumes[spool["name"]]["emptyDir"]


def _settings_of(manifests: tuple[Manifest, ...]) -> dict[str, str]:
    """The variables the settings ConfigMap gives (every workload reads it whole)."""
    (config,) = [
        m for m in every(manifests, "ConfigMap") if "callrec-settings" in m["metadata"]["name"]
    ]
    return dict(config["data"])


def _environment(manifests: tuple[Manifest, ...], container: Manifest) -> dict[str, str]:
    """The variables a container is given: its ConfigMaps' and its own."""
    variables: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        variables.update(find(manifests, "ConfigMap", name)["data"])
    for variable in container.get("env", []):
        assert "value" in variable, f"{variable['name']}: secrets are files, not variables"
        variables[variable["name"]] = variable["value"]
    return variables


def _aws_variables() -> set[str]:
    """The AWS_* variables boto3 reads for what the service uses (S3 and KMS)."""
    session = botocore.session.get_session()
    names = {"AWS_ENDPOINT_URL"}
    for _, (_, env, _, _) in session.session_var_map.items():
        names.update([env] if isinstance(env, str) else list(env or ()))
    for service in ("s3", "kms"):
        service_id = session.get_service_model(service).service_id
        names.add("AWS_ENDPOINT_URL_" + str(service_id).upper().replace(" ", "_"))
    return names


@pytest.mark.parametrize("which", sorted(RENDERS))
def test_every_variable_the_manifests_set_is_one_the_service_reads(which: str) -> None:
    manifests = render(RENDERS[which])
    aws = _aws_variables()
    for name, spec in pod_specs(manifests):
        for container in containers(spec):
            variables = list(_environment(manifests, container))
            assert not unknown_settings(variables), f"{name}: no such setting"
            for variable in variables:
                if not variable.startswith("CALLREC_"):
                    assert variable in aws, f"{name}: {variable} is read by nothing"


def test_the_production_overlay_is_a_valid_configuration_of_a_replicated_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each workload's environment, with its secret files made of sample values, passes the
    # same checks that stop `serve` and `db upgrade` at start-up.
    manifests = production()
    for name, spec in pod_specs(manifests):
        for variable in list(os.environ):  # noqa: TID251 - the test's own environment
            if variable.startswith(("CALLREC_", "AWS_")):
                monkeypatch.delenv(variable)
        for variable, value in _environment(manifests, containers(spec)[0]).items():
            if variable.endswith("_FILE"):
                key = value.rsplit("/", 1)[1]
                assert key in SAMPLE_SECRETS, f"{name}: give {key} a sample value here"
                (tmp_path / key).write_text(SAMPLE_SECRETS[key])
                value = str(tmp_path / key)
            monkeypatch.setenv(variable, value)
        settings = load_settings()
        assert not settings.uses_embedded_database, name
        assert settings.single_node is False, name
        assert settings.auth_mode == "oidc", name
        assert (settings.store_url or "").startswith("s3://"), name


def _secret_files(spec: Manifest) -> dict[str, tuple[str, str]]:
    """variable -> (Secret, key) for each variable naming a file of a mounted Secret."""
    secret_volumes = {
        v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v
    }
    found = {}
    for container in containers(spec):
        mounts = {
            m["mountPath"].rstrip("/"): secret_volumes[m["name"]]
            for m in container["volumeMounts"]
            if m["name"] in secret_volumes
        }
        for variable in container.get("env", []):
            folder, _, key = variable["value"].rpartition("/")
            if folder in mounts:
                found[variable["name"]] = (mounts[folder], key)
    return found


def _documented_secrets() -> dict[tuple[str, str], str]:
    """(Secret, key) -> what reads it, from the table in deploy/kubernetes/README.md."""
    rows = re.findall(
        r"^\| `([a-z0-9.-]+)` \| ([^|]+) \| ([^|]+) \|",
        (KUBERNETES / "README.md").read_text(),
        re.M,
    )
    documented = {}
    for secret, keys, reader in rows:
        for key in re.findall(r"`([^`]+)`", keys):
            documented[(secret, key)] = reader.strip().strip("`")
    return documented


@pytest.mark.parametrize("which", sorted(RENDERS))
def test_every_secret_and_config_map_referenced_exists_or_is_documented(which: str) -> None:
    manifests = render(RENDERS[which])
    documented = _documented_secrets()
    assert not unknown_settings(documented.values())
    config_maps = {m["metadata"]["name"] for m in every(manifests, "ConfigMap")}
    for name, spec in pod_specs(manifests):
        for container in containers(spec):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps, name
        for variable, (secret, key) in _secret_files(spec).items():
            assert documented.get((secret, key)) == variable, f"{name}: {secret}/{key}"
        for volume in spec["volumes"]:
            if "secret" in volume:
                assert any(s == volume["secret"]["secretName"] for s, _ in documented), name
    for tls in find(manifests, "Ingress")["spec"]["tls"]:
        assert (tls["secretName"], "tls.crt") in documented
    assert not every(manifests, "Secret"), "no secret values in the repository"


async def test_the_ingress_routes_every_public_path_of_the_service_and_no_operations_path(
    tmp_path: Path, sqlite_template: Path
) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "callrec.db")
    async with running_service(tmp_path / "var", f"sqlite+aiosqlite:///{tmp_path}/callrec.db") as s:
        routes = {
            re.sub(r"\{[^}]+\}", "x", route.resource.canonical)
            for route in s.client.app.router.routes()
            if route.resource is not None
        }
    assert routes >= OPERATIONS_ROUTES
    for which in RENDERS:
        (rule,) = find(render(RENDERS[which]), "Ingress")["spec"]["rules"]
        paths = rule["http"]["paths"]
        for path in routes:
            assert _routed(paths, path) is (path not in OPERATIONS_ROUTES), (which, path)


def _routed(paths: list[dict[str, Any]], path: str) -> bool:
    """Whether an Ingress with ``paths`` sends ``path`` to a backend (Exact and Prefix, as
    the Ingress API defines them: a prefix matches whole path elements)."""
    for entry in paths:
        rule = entry["path"]
        if entry["pathType"] == "Exact" and path == rule:
            return True
        if entry["pathType"] == "Prefix" and (
            rule == "/" or path == rule.rstrip("/") or path.startswith(rule.rstrip("/") + "/")
        ):
            return True
    return False


def test_the_migration_job_is_applied_first_with_everything_it_needs() -> None:
    site = production()
    first = [m for m in site if m["metadata"].get("labels", {}).get(FIRST) == "true"]
    assert {m["kind"] for m in first} == {"ServiceAccount", "ConfigMap", "NetworkPolicy", "Job"}
    (job,) = every(first, "Job")
    spec = job["spec"]["template"]["spec"]
    (upgrade,) = spec["containers"]
    assert upgrade["args"] == ["db", "upgrade"]
    assert (
        upgrade["image"]
        == find(site, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert spec["restartPolicy"] == "Never"
    assert find(first, "ServiceAccount", spec["serviceAccountName"])
    for source in upgrade["envFrom"]:
        assert find(first, "ConfigMap", source["configMapRef"]["name"])
    labels = job["spec"]["template"]["metadata"]["labels"]
    # Its pods reach the database: the network policies select them too.
    for policy in every(first, "NetworkPolicy"):
        assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert FIRST not in find(site, "Deployment")["metadata"]["labels"]


def test_network_policies_admit_only_the_ingress_controller_and_prometheus() -> None:
    site = production()
    pods = find(site, "Deployment")["spec"]["template"]["metadata"]["labels"]
    policies = every(site, "NetworkPolicy")
    assert all(p["spec"]["podSelector"]["matchLabels"].items() <= pods.items() for p in policies)
    ingress = [rule for p in policies for rule in p["spec"].get("ingress", [])]
    (rule,) = ingress
    assert rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert len(rule["from"]) == 2
    egress = {
        p["metadata"]["name"]: p["spec"]["egress"]
        for p in policies
        if "Egress" in p["spec"]["policyTypes"]
    }
    assert set(egress) == {
        "callrec-egress-dns",
        "callrec-egress-postgresql",
        "callrec-egress-object-store",
        "callrec-egress-kms",
        "callrec-egress-identity-provider",
        "callrec-egress-telephony",
    }
    for name, rules in egress.items():
        for allowed in rules:
            # Every destination is named: no rule without a peer (which would allow all).
            assert allowed["to"], name
            assert allowed["ports"], name
    assert {p["port"] for p in egress["callrec-egress-dns"][0]["ports"]} == {53}
    assert egress["callrec-egress-postgresql"][0]["ports"] == [{"port": 5432, "protocol": "TCP"}]


def test_the_service_budget_and_monitoring_select_the_replicas_and_only_them() -> None:
    site = production()
    pods = find(site, "Deployment")["spec"]["template"]["metadata"]["labels"]
    job_pods = find(site, "Job")["spec"]["template"]["metadata"]["labels"]
    service = find(site, "Service")
    for selector in (
        service["spec"]["selector"],
        find(site, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pods.items()
        assert not selector.items() <= job_pods.items()
    monitor = find(site, "ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= {
        p["name"] for p in service["spec"]["ports"]
    }
    # The jobs the alert rules name: the Service's label, and the Probe's job.
    rules = find(site, "PrometheusRule")["spec"]["groups"]
    jobs = set(re.findall(r'job="([^"]+)"', " ".join(r["expr"] for g in rules for r in g["rules"])))
    probe = find(site, "Probe")["spec"]["jobName"]
    assert jobs == {service["metadata"]["labels"][monitor["spec"]["jobLabel"]], probe}
