"""``/metrics`` of a real ``fap serve``, and the names the dashboard, the rules and the docs use."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import httpx
import msgspec
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from tests.support.processes import ServerProcess, wait_until

from fap.api import DEVICES, UPLOADS, DeviceRegistration, UploadCreate, UploadCreated
from fap.crypto import DeviceIdentity

REPO = Path(__file__).resolve().parents[2]
_METRIC_NAME = re.compile(r"\b(?:fap|process)_[a-z0-9_]*[a-z0-9]\b")
# The series each type of family exposes, by suffix.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "untyped": ("",),
}


def scrape(server: ServerProcess) -> httpx.Response:
    response = httpx.get(f"{server.url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return response


def exported(text: str) -> set[str]:
    """Every family and series name the exposition defines, with samples yet or not."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return names


def sample(text: str, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return None


@pytest.fixture
def queued_upload(server: ServerProcess) -> UploadCreated:
    """One upload of an empty file, which is queued at once."""
    headers = {"Authorization": f"Bearer {server.owner_token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        device = DeviceRegistration(name="laptop", recipient=DeviceIdentity.generate().recipient)
        assert http.post(DEVICES, content=msgspec.json.encode(device)).is_success
        create = UploadCreate(name="empty.csv", size=0, sha256=hashlib.sha256(b"").hexdigest())
        response = http.post(UPLOADS, content=msgspec.json.encode(create))
        assert response.status_code == 201, response.text
        return msgspec.json.decode(response.content, type=UploadCreated)


def test_a_real_server_serves_its_scaling_signals_without_a_token(
    server: ServerProcess, queued_upload: UploadCreated
) -> None:
    wait_until(
        lambda: (sample(scrape(server).text, "fap_event_loop_lag_seconds_count") or 0) >= 2,
        10,
        "the event-loop probe to measure",
    )
    response = scrape(server)
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    assert sample(text, "fap_queue_depth", engine="size@1") == 1
    assert sample(text, "fap_jobs_leased", engine="size@1") == 0
    created = {"route": "/v1/uploads", "method": "POST", "status": "2xx"}
    assert sample(text, "fap_http_requests_total", **created) == 1
    assert (sample(text, "process_cpu_seconds_total") or 0) > 0
    # Nothing private: no ids, no tokens, no names of users or files.
    for secret in (queued_upload.upload.id, server.owner_token, "empty.csv", "owner"):
        assert secret not in text


def test_every_metric_the_dashboard_rules_and_docs_name_is_exported(server: ServerProcess) -> None:
    names = exported(scrape(server).text)
    dashboard = json.loads((REPO / "deploy/grafana/fap.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    expressions += [v["definition"] for v in dashboard["templating"]["list"]]
    rules = yaml.safe_load((REPO / "deploy/rules.yml").read_text())
    expressions += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    referenced = {
        "deploy/grafana/fap.json and deploy/rules.yml": {
            name for expr in expressions for name in _METRIC_NAME.findall(expr)
        },
        "docs/scaling.md": set(_METRIC_NAME.findall((REPO / "docs/scaling.md").read_text())),
    }
    for where, used in referenced.items():
        assert len(used) >= 8, where
        assert used <= names, f"{where} names metrics /metrics lacks: {sorted(used - names)}"
