"""The alert rules (the PrometheusRule in deploy/kubernetes/base, their one definition):
the alerts the runbooks name, loaded and unit-tested by promtool, and naming only metrics
the service serves."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.manifests import BASE
from tests.fixtures_db import skip_or_fail
from tests.service_support import running_service

RULES = BASE / "prometheusrule.yaml"
CASES = Path(__file__).parent / "alert_cases.yaml"
ALERTS = {
    "CallrecRecordingOverdue",
    "CallrecAttestationFailed",
    "CallrecSweepStalled",
    "CallrecFetchDeadLettered",
    "CallrecIntegrityProblems",
    "CallrecReplicaNotReady",
    "CallrecCertificateExpiringSoon",
    "CallrecKeyExpiringSoon",
    "CallrecRenditionBacklogStale",
    "CallrecSiprecRecordingNotStored",
}
"""The alerts docs/operations.md has a runbook heading for."""
NOT_THE_SERVICE_S = {
    "up": "Prometheus's own, for each target it scrapes",
    "probe_ssl_earliest_cert_expiry": "the blackbox exporter's, for the Probe's targets",
}
"""Metrics the rules read that come from elsewhere than the service's /metrics."""
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
PROMQL_WORDS |= {"and", "or", "unless", "offset", "inf", "nan"}


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def write_rule_file(path: Path, *, annotations: bool = True) -> Path:
    """The PrometheusRule's spec as a Prometheus rule file, as the README says to make it."""
    spec = yaml.safe_load(RULES.read_text())["spec"]
    if not annotations:
        for group in spec["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        skip_or_fail("promtool is not installed (`make system-tools` installs Debian's prometheus)")
        raise AssertionError("unreachable")  # skip_or_fail always raises
    return found


def test_the_rules_are_the_alerts_the_runbooks_name_each_with_its_runbook() -> None:
    alerts = {rule["alert"]: rule for rule in rules()}
    assert set(alerts) == ALERTS
    for name, rule in alerts.items():
        assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{name.lower()}"
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert {"summary", "description"} <= rule["annotations"].keys(), name


def test_promtool_accepts_the_rules(tmp_path: Path) -> None:
    rule_file = write_rule_file(tmp_path / "callrec.rules.yaml")
    result = subprocess.run(
        [promtool(), "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_each_alert_fires_when_it_should_and_stays_quiet_otherwise(tmp_path: Path) -> None:
    cases = yaml.safe_load(CASES.read_text())
    tested = {test["alertname"] for group in cases["tests"] for test in group["alert_rule_test"]}
    assert tested == ALERTS
    cases["rule_files"] = [str(write_rule_file(tmp_path / "rules.yaml", annotations=False))]
    (tmp_path / "cases.yaml").write_text(yaml.safe_dump(cases, sort_keys=False))
    result = subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "cases.yaml")],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def metrics_named(expression: str) -> set[str]:
    """The metric names in a PromQL expression: its identifiers, less functions (followed
    by a parenthesis), keywords, the labels of by/on/... clauses and label matchers, and
    quoted strings and durations."""
    expression = re.sub(r'"[^"]*"', "", expression)
    expression = re.sub(r"\{[^}]*\}", "", expression)
    expression = re.sub(r"\[[^]]*\]", "", expression)
    expression = re.sub(
        r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expression
    )
    names = set()
    for match in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", expression):
        name, call = match.groups()
        if call is None and name.lower() not in PROMQL_WORDS:
            names.add(name)
    return names


def test_the_metric_names_are_read_out_of_an_expression_and_nothing_else() -> None:
    expression = (
        'max by (namespace, pod) (up{job="x"}) == 0 or min without (a) '
        "(time() - last_over_time(some_metric_total[7d])) > 2 * 60 and on (pod) other"
    )
    assert metrics_named(expression) == {"up", "some_metric_total", "other"}


async def test_every_metric_the_rules_name_is_served(tmp_path: Path, sqlite_template: Path) -> None:
    shutil.copyfile(sqlite_template, tmp_path / "callrec.db")
    async with running_service(tmp_path / "var", f"sqlite+aiosqlite:///{tmp_path}/callrec.db") as s:
        text = await (await s.client.get("/metrics")).text()
    samples = [
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    ]
    named = {name for rule in rules() for name in metrics_named(rule["expr"])}
    assert named >= set(NOT_THE_SERVICE_S)
    missing = named - {sample.name for sample in samples} - set(NOT_THE_SERVICE_S)
    assert not missing, f"the rules name metrics the service does not serve: {sorted(missing)}"
    # The label values the rules select on are served too.
    for rule in rules():
        for name, selector in re.findall(r"\b(callrec_[a-z_]+)\{([^}]*)\}", rule["expr"]):
            for label, value in re.findall(r'(\w+)="([^"]*)"', selector):
                assert any(
                    sample.name == name and sample.labels.get(label) == value for sample in samples
                ), (rule["alert"], name, label, value)
