"""Files the failure notebooks show but do not run: the Kubernetes Ingress of notebook F21.

A manifest in a lesson is copied into real clusters, so it must at least parse, be the kind of object it
claims to be, and carry the annotations the notebook talks about, with values ingress-nginx accepts
(strings of seconds) that are longer than the heartbeat the notebook recommends.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import yaml  # pyyaml is in requirements.lock, which every make target installs: never a skip

FAILURES = Path(__file__).resolve().parents[2] / "notebooks" / "failures"
INGRESS = FAILURES / "k8s" / "ingress-nginx-websocket.yaml"
NOTEBOOK = FAILURES / "F21_proxy_idle_timeout.ipynb"
PREFIX = "nginx.ingress.kubernetes.io/"
HEARTBEAT = 20  # seconds: uvicorn's --ws-ping-interval default, the notebook's heartbeat
NGINX_DEFAULT = 60  # seconds: what the annotations replace


def manifest() -> dict:
    return yaml.safe_load(INGRESS.read_text())


def annotations_named_in_the_notebook() -> set[str]:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    text = "\n".join(cell.source for cell in nb.cells)
    return set(re.findall(r"nginx\.ingress\.kubernetes\.io/([a-z-]+)", text)) | set(
        re.findall(r"`(proxy-[a-z]+-timeout)`", text)
    )


def test_the_manifest_is_one_ingress() -> None:
    ingress = manifest()
    assert ingress["apiVersion"] == "networking.k8s.io/v1"
    assert ingress["kind"] == "Ingress"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"]["name"]


def test_it_carries_the_annotations_the_notebook_names() -> None:
    named = annotations_named_in_the_notebook()
    assert {"proxy-read-timeout", "proxy-send-timeout"} <= named
    present = {key.removeprefix(PREFIX) for key in manifest()["metadata"]["annotations"]}
    assert named <= present, f"named in F21 but missing from the manifest: {named - present}"


def test_timeouts_are_strings_of_seconds_above_the_heartbeat() -> None:
    timeouts = {k: v for k, v in manifest()["metadata"]["annotations"].items() if k.endswith("-timeout")}
    assert {f"{PREFIX}proxy-read-timeout", f"{PREFIX}proxy-send-timeout"} <= set(timeouts)
    for key, value in timeouts.items():
        # ingress-nginx wants a quoted number of seconds: YAML must not turn it into an int, nor "60s"
        assert isinstance(value, str) and value.isdigit(), f"{key}: {value!r}"
        assert int(value) > NGINX_DEFAULT > 2 * HEARTBEAT, f"{key}: {value!r}"
