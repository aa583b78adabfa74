"""deploy/: the Dockerfile (hadolint, and the wheel set it installs, serving in a fresh venv) and the
Kubernetes manifests (every overlay rendered with kustomize and validated against Kubernetes' schemas).

No Docker engine runs here, so the image itself is not built: the test builds the same wheels the
Dockerfile builds, installs them as it does, starts ``core-connectors serve`` and runs the Dockerfile's own
HEALTHCHECK command against it. ``CORE_CONNECTORS_IMAGE_CONNECTORS`` plays the build argument (default:
the Dockerfile's).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from deploy_fleet import free_port, wait_for
from flyteidl.admin import agent_pb2
from flyteidl.service import agent_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
OVERLAYS = sorted((ROOT / "deploy" / "kubernetes" / "overlays").iterdir())
KUBERNETES_VERSIONS = ("1.27.0", "1.37.0")  # native gRPC probes are GA from 1.27


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(found).exists():
        pytest.fail(f"{name} is not installed (the cross session installs it from the package index)")
    return found


# ------------------------------------------------------------------------------------------------ image
def _dockerfile_default(arg: str) -> str:
    match = re.search(rf'^ARG {arg}="([^"]*)"', DOCKERFILE.read_text(), re.MULTILINE)
    assert match, f"the Dockerfile declares no default for {arg}"
    return match.group(1)


def _image_connectors() -> list[str]:
    return os.environ.get("CORE_CONNECTORS_IMAGE_CONNECTORS", _dockerfile_default("CONNECTORS")).split()


def test_hadolint_passes():
    done = subprocess.run([_tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_image_runs_as_non_root_with_the_serve_entry_point():
    text = DOCKERFILE.read_text()
    final = text[text.rindex("\nFROM ") :]
    assert "AS build" not in final.splitlines()[0]
    assert re.search(r"^USER 10001", final, re.MULTILINE)
    assert 'ENTRYPOINT ["core-connectors"]' in final and 'CMD ["serve"]' in final
    # only the virtual environment comes from the build stage: no compilers, wheels or caches
    assert re.findall(r"^COPY .*", final, re.MULTILINE) == [
        "COPY --from=build /opt/core-connectors /opt/core-connectors"
    ]


def test_the_default_connectors_are_packages_of_this_repository():
    missing = [name for name in _dockerfile_default("CONNECTORS").split() if not (ROOT / "connectors" / name).is_dir()]
    assert not missing, f"the Dockerfile's default CONNECTORS names packages that are not in connectors/: {missing}"


@pytest.mark.slow
def test_the_image_wheel_set_serves_and_passes_its_health_check(uv, fresh_venv, tmp_path):
    connectors = _image_connectors()
    # the Dockerfile's build stage: one wheel per package (hatchling), in a folder of its own
    packages = [ROOT / "core"] + [ROOT / "connectors" / name for name in connectors]
    for package in packages:
        subprocess.run(
            [uv, "build", "--wheel", "--quiet", "--out-dir", str(tmp_path / "wheels"), str(package)], check=True
        )
    wheels = sorted((tmp_path / "wheels").glob("*.whl"))
    assert len(wheels) == len(packages)
    venv = fresh_venv(*wheels)
    port, metrics_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CORE_CONNECTORS_")},
        "CORE_CONNECTORS_PORT": str(port),
        "CORE_CONNECTORS_PROMETHEUS_PORT": str(metrics_port),
        "CORE_CONNECTORS_HOST": "127.0.0.1",
        "CORE_CONNECTORS_LOG_FORMAT": "json",  # as the image sets it
    }
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(venv / "bin" / "core-connectors"), "serve"], env=env, stdout=out, stderr=out)
    try:
        healthcheck = _healthcheck_command(venv)
        wait_for(lambda: subprocess.run(healthcheck, env=env).returncode == 0 or proc.poll() is not None, 60, "health")
        assert proc.poll() is None, log.read_text()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            agents = agent_pb2_grpc.AgentMetadataServiceStub(channel).ListAgents(agent_pb2.ListAgentsRequest())
        served = {a.name for a in agents.agents}
        assert len(served) >= len(connectors), served
        failures = [json.loads(line) for line in log.read_text().splitlines() if '"WARNING"' in line]
        assert not [f for f in failures if "failed to load" in f["message"] or "skipped" in f["message"]], failures
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        # and the health check says so when nothing serves
        assert subprocess.run(healthcheck, env=env, capture_output=True).returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _healthcheck_command(venv: Path) -> list[str]:
    """The Dockerfile's HEALTHCHECK, with the venv's python for the image's."""
    match = re.search(r"^HEALTHCHECK [^\n]*\\\n\s+CMD (\[[^\n]*\])$", DOCKERFILE.read_text(), re.MULTILINE)
    assert match
    command: list[str] = json.loads(match.group(1))
    assert command[0] == "python"
    return [str(venv / "bin" / "python"), *command[1:]]


# ------------------------------------------------------------------------------------------------ kubernetes
def _render(overlay: Path) -> list[dict[str, Any]]:
    done = subprocess.run([_tool("kubectl"), "kustomize", str(overlay)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_every_overlay_renders_and_validates_against_the_kubernetes_schemas(overlay):
    import kubernetes_validate

    objects = _render(overlay)
    assert {o["kind"] for o in objects} == {
        "ServiceAccount",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    for version in KUBERNETES_VERSIONS:
        for obj in objects:
            kubernetes_validate.validate(obj, version, strict=True)  # raises with the offending field


@pytest.mark.parametrize("overlay", OVERLAYS, ids=[o.name for o in OVERLAYS])
def test_every_overlay_drains_probes_and_mounts_secrets_where_the_service_reads_them(overlay):
    objects = {o["kind"]: o for o in _render(overlay)}
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    # SIGKILL only after the drain delay and the grace period
    grace = float(env["CORE_CONNECTORS_GRACE"])
    drain = float(env["CORE_CONNECTORS_DRAIN_DELAY"])
    assert pod["terminationGracePeriodSeconds"] > drain + grace
    # the readiness probe notices NOT_SERVING well within the drain delay
    readiness = container["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < drain
    if "CORE_CONNECTORS_TLS_CERT" not in env:  # the kubelet's gRPC probe speaks plaintext only
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"]["port"] == 8000
    else:
        tls_mount = next(m for m in container["volumeMounts"] if m["name"] == "tls")
        assert env["CORE_CONNECTORS_TLS_CERT"].startswith(tls_mount["mountPath"] + "/")
    # secrets where get_connector_secret reads them
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["connector-secrets"] == env["FLYTE_SECRETS_DEFAULT_DIR"] == "/etc/secrets"
    # gRPC on 8000 with appProtocol, metrics on 9090, both scraped
    ports = {p["name"]: p for p in objects["Service"]["spec"]["ports"]}
    assert ports["grpc"]["port"] == 8000 and ports["grpc"]["appProtocol"] == "grpc"
    assert ports["metrics"]["port"] == 9090
    annotations = objects["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9090"
    # the PDB and the HPA select and scale this Deployment
    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    assert (
        objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == objects["Deployment"]["metadata"]["name"]
    )


def test_the_secret_directory_is_the_one_get_connector_secret_reads_by_default(monkeypatch, tmp_path):
    from core_connectors.secrets import get_connector_secret

    monkeypatch.delenv("FLYTE_SECRETS_DEFAULT_DIR", raising=False)
    monkeypatch.delenv("_FSEC_DEPLOY_PROBE", raising=False)
    with pytest.raises(Exception, match="/etc/secrets/deploy_probe"):
        get_connector_secret("DEPLOY_PROBE")
