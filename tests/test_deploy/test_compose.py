"""docker-compose.yml and the files it mounts are wired together consistently.

No Docker engine is needed: the compose file is read with PyYAML and its ``${VAR:-default}`` values are
resolved as ``docker compose`` resolves them with no ``.env`` file, i.e. the default deployment is checked.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings

import streams.metrics
import streams.settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DASHBOARD_FILE = REPO / "deploy" / "grafana" / "dashboards" / "cardiowatch.json"

# --- helpers -------------------------------------------------------------------------------------------

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<named>[A-Za-z_]\w*))"
)


def _interpolate(value: Any) -> Any:
    """Resolve Compose variables as `docker compose` does when none of them is set."""
    if isinstance(value, dict):
        return {key: _interpolate(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_interpolate(item) for item in value]
    if not isinstance(value, str):
        return value

    def resolve(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        operator = match["op"] or ""
        if operator.endswith("?"):  # ${VAR:?message}: compose refuses to start without VAR
            raise AssertionError(f"{match['braced']} must be set: {match['arg']}")
        return match["arg"] if operator.endswith("-") else ""

    return _VARIABLE.sub(resolve, value)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, from either compose syntax (mapping or `NAME=value` list)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return {name: "" if value is None else str(value) for name, value in env.items()}


def _settings_fields() -> dict[str, FieldInfo]:
    """Every environment variable the pydantic-settings classes of `streams.settings` read."""
    fields = {}
    for obj in vars(streams.settings).values():
        if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings:
            prefix = obj.model_config.get("env_prefix", "")
            fields.update({prefix + name.upper(): info for name, info in obj.model_fields.items()})
    return fields


def _worker_metrics() -> dict[str, set[str]]:
    """{series name on /metrics: label names} of every metric declared in `streams.metrics`."""
    series = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}
    metrics = {}
    for obj in vars(streams.metrics).values():
        if isinstance(obj, MetricWrapperBase):
            family = next(iter(obj.describe()))
            assert family.type in series, f"{family.name}: teach this test the series of a {family.type}"
            labels = set(obj._labelnames)  # prometheus_client has no public accessor for them
            for suffix in series[family.type]:
                metrics[family.name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return metrics


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _listeners(spec: str) -> dict[str, tuple[str, int]]:
    """`NAME://host:port,...` (Kafka listener syntax) as {NAME: (host, port)}."""
    listeners = {}
    for item in spec.split(","):
        name, _, address = item.strip().partition("://")
        listeners[name] = _host_port(address)
    return listeners


def _published_ports(service: dict[str, Any]) -> dict[int, int | None]:
    """{container port: host port or None} from either compose ports syntax."""
    ports: dict[int, int | None] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports[int(entry["target"])] = int(entry["published"]) if entry.get("published") else None
            continue
        parts = str(entry).split("/")[0].split(":")  # [ip:][host:]container[/protocol]
        ports[int(parts[-1])] = int(parts[-2]) if len(parts) > 1 and parts[-2] else None
    return ports


def _bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """{container path: repository path} of the service's bind mounts (named volumes left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            source, target, is_bind = volume.get("source", ""), volume["target"], volume.get("type") == "bind"
        else:
            source, target = volume.split(":")[:2]
            is_bind = source.startswith((".", "/", "~"))
        if is_bind:
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def _mounted_file(service: dict[str, Any], container_path: str) -> Path:
    """The repository file a service sees at `container_path`, directly or inside a mounted folder."""
    for target, source in _bind_mounts(service).items():
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            return source / Path(container_path).relative_to(target)
    raise AssertionError(f"nothing from the repository is mounted at {container_path}")


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    """{service: condition}; the list syntax means service_started."""
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


_PROMQL_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_PROMQL_KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
}


def _metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects: identifiers that are not functions, keywords or labels."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", expr)  # label matchers, ranges (and $__rate_interval)
    expr = _PROMQL_GROUPING.sub("", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.$])[A-Za-z_:][\w:]*", expr):
        if not expr[match.end() :].lstrip().startswith("(") and match.group() not in _PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def _dashboard_exprs(node: Any) -> list[str]:
    """Every `expr` of the dashboard, however deeply its panels are nested."""
    if isinstance(node, dict):
        return [e for key, value in node.items() for e in ([value] if key == "expr" else _dashboard_exprs(value))]
    if isinstance(node, list):
        return [e for item in node for e in _dashboard_exprs(item)]
    return []


def _datasource_uids(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["datasource"]["uid"]} if isinstance(node.get("datasource"), dict) else set()
        return found.union(*(_datasource_uids(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_datasource_uids(item) for item in node))
    return set()


# --- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return _interpolate(yaml.safe_load(COMPOSE_FILE.read_text()))["services"]


@pytest.fixture(scope="module")
def web_port(services: dict[str, dict[str, Any]]) -> int:
    return int(_environment(services["worker"])["CARDIOWATCH_WEB_PORT"])


@pytest.fixture(scope="module")
def prometheus_config(services: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The config file Prometheus is started with (its --config.file), read from the repository."""
    prometheus = services["prometheus"]
    flags = dict(arg.split("=", 1) for arg in prometheus.get("command", []) if "=" in arg)
    path = flags.get("--config.file", "/etc/prometheus/prometheus.yml")  # the image's default
    return yaml.safe_load(_mounted_file(prometheus, path).read_text())


@pytest.fixture(scope="module")
def grafana_provisioning(services: dict[str, dict[str, Any]]) -> Path:
    return _mounted_file(services["grafana"], "/etc/grafana/provisioning")


@pytest.fixture(scope="module")
def datasources(grafana_provisioning: Path) -> list[dict[str, Any]]:
    files = sorted((grafana_provisioning / "datasources").glob("*.y*ml"))
    return [source for file in files for source in yaml.safe_load(file.read_text())["datasources"]]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD_FILE.read_text())


# --- settings ------------------------------------------------------------------------------------------


def test_every_cardiowatch_variable_in_compose_is_a_setting_the_project_reads(services):
    known = _settings_fields()
    named = {name for service in services.values() for name in _environment(service) if name.startswith("CARDIOWATCH_")}
    assert named, "no CARDIOWATCH_* variable in docker-compose.yml"
    assert named <= known.keys(), f"not read by streams.settings: {sorted(named - known.keys())}"


def test_worker_environment_defaults_are_valid_settings(services, monkeypatch):
    for name in [name for name in os.environ if name.startswith("CARDIOWATCH_")]:
        monkeypatch.delenv(name)
    for name, value in _environment(services["worker"]).items():
        monkeypatch.setenv(name, value)
    for obj in vars(streams.settings).values():
        if isinstance(obj, type) and issubclass(obj, BaseSettings) and obj is not BaseSettings:
            obj()  # raises pydantic's ValidationError on a value the worker would refuse at start-up


# --- Kafka ---------------------------------------------------------------------------------------------


def test_worker_bootstraps_from_the_kafka_internal_listener(services):
    kafka_env = _environment(services["kafka"])
    advertised = _listeners(kafka_env["KAFKA_ADVERTISED_LISTENERS"])
    bound = _listeners(kafka_env["KAFKA_LISTENERS"])
    for address in _environment(services["worker"])["CARDIOWATCH_BOOTSTRAP_SERVERS"].split(","):
        host, port = _host_port(address.strip())
        assert host in {"kafka", services["kafka"].get("hostname")}, f"{address} is not the kafka service"
        names = [name for name, listener in advertised.items() if listener == (host, port)]
        assert names, f"{address} is not among kafka's advertised listeners {advertised}"
        assert bound[names[0]][1] == port, f"kafka does not listen on {port} for {names[0]}"


def test_kafka_host_listener_is_published_on_its_port(services):
    kafka = services["kafka"]
    host_listeners = [
        listener
        for listener in _listeners(_environment(kafka)["KAFKA_ADVERTISED_LISTENERS"]).values()
        if listener[0] == "localhost"
    ]
    assert host_listeners, "kafka advertises no listener for the host"
    for _, port in host_listeners:
        assert _published_ports(kafka).get(port) == port, f"localhost:{port} is not published"


def test_worker_waits_for_a_healthy_kafka(services):
    assert _depends_on(services["worker"]).get("kafka") == "service_healthy"
    probe = " ".join(services["kafka"]["healthcheck"]["test"])
    match = re.search(r"--bootstrap-server\s+(\S+)", probe)
    assert match, f"kafka's healthcheck does not contact the broker: {probe}"
    listening = {port for _, port in _listeners(_environment(services["kafka"])["KAFKA_LISTENERS"]).values()}
    assert _host_port(match[1])[1] in listening, f"kafka's healthcheck probes {match[1]}, a port it does not bind"


def test_topics_are_created_before_the_worker_starts(services):
    topics, worker = services["topics"], services["worker"]
    assert _depends_on(worker).get("topics") == "service_completed_successfully"
    assert _depends_on(topics).get("kafka") == "service_healthy"
    assert topics["command"] in (["topics"], "topics")
    assert topics["image"] == worker["image"], "topics must run the cardiowatch image"
    bootstrap = "CARDIOWATCH_BOOTSTRAP_SERVERS"
    assert _environment(topics)[bootstrap] == _environment(worker)[bootstrap]


def test_kafka_creates_no_topic_itself_and_defaults_to_the_project_partition_count(services):
    kafka_env, worker_env = _environment(services["kafka"]), _environment(services["worker"])
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    partitions = worker_env.get("CARDIOWATCH_PARTITIONS", _settings_fields()["CARDIOWATCH_PARTITIONS"].default)
    assert int(kafka_env["KAFKA_NUM_PARTITIONS"]) == int(partitions)


# --- worker --------------------------------------------------------------------------------------------


def test_worker_image_is_built_from_the_repository_dockerfile_with_the_cli_entrypoint(services):
    build = services["worker"]["build"]
    dockerfile = COMPOSE_FILE.parent / build["context"] / build.get("dockerfile", "Dockerfile")
    assert dockerfile.is_file()
    entrypoint = re.search(r'^ENTRYPOINT\s+\["([^"]+)"', dockerfile.read_text(), re.MULTILINE)
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint and entrypoint[1] in scripts, "the image's entrypoint is not a console script of the project"


def test_worker_can_be_scaled_out(services):
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container name allows one replica only"
    fixed = {port: host for port, host in _published_ports(worker).items() if host is not None}
    assert not fixed, f"fixed host ports allow one replica only: {fixed}"


def test_worker_exposes_and_health_checks_its_web_port(services, web_port):
    worker = services["worker"]
    assert web_port in {int(str(port).split("/")[0]) for port in worker.get("expose", [])}
    url = re.search(r"https?://[^'\"\s]+", " ".join(worker["healthcheck"]["test"]))
    assert url, "the worker's healthcheck requests no URL"
    parts = urlsplit(url[0])
    assert (parts.hostname, parts.port, parts.path) == ("localhost", web_port, "/health")


# --- Prometheus and Grafana ----------------------------------------------------------------------------


def test_prometheus_scrapes_every_worker_on_its_web_port(services, prometheus_config, web_port):
    targets = [
        (job.get("metrics_path", "/metrics"), sd)
        for job in prometheus_config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
    ]
    assert targets, "prometheus discovers no target through DNS"
    assert all(sd["names"] == ["worker"] and "worker" in services for _, sd in targets)
    assert all(sd.get("type") == "A" and sd["port"] == web_port for _, sd in targets)
    assert all(path == "/metrics" for path, _ in targets)


def test_grafana_datasource_points_at_the_prometheus_service(services, datasources):
    prometheus_sources = [source for source in datasources if source["type"] == "prometheus"]
    assert prometheus_sources, "grafana provisions no prometheus datasource"
    prometheus_ports = set(_published_ports(services["prometheus"]))
    for source in prometheus_sources:
        url = urlsplit(source["url"])
        assert url.hostname in services and services[url.hostname]["image"].startswith("prom/prometheus")
        assert url.port in prometheus_ports, f"{source['url']}: prometheus listens on {prometheus_ports}"


def test_grafana_loads_dashboards_from_the_mounted_folder(services, grafana_provisioning):
    files = sorted((grafana_provisioning / "dashboards").glob("*.y*ml"))
    paths = [p["options"]["path"] for file in files for p in yaml.safe_load(file.read_text())["providers"]]
    assert paths, "grafana provisions no dashboards provider"
    for path in paths:
        assert _mounted_file(services["grafana"], path) == DASHBOARD_FILE.parent.resolve()


def test_dashboard_queries_use_only_metrics_the_worker_exposes(dashboard):
    exprs = _dashboard_exprs(dashboard["panels"])
    assert exprs, "the dashboard has no query"
    used = set().union(*(_metric_names(expr) for expr in exprs))
    assert used, "the dashboard's queries select no metric"
    exposed = _worker_metrics()
    assert used <= exposed.keys(), f"not exposed by the worker: {sorted(used - exposed.keys())}"


def test_dashboard_groups_only_by_labels_its_metrics_have(dashboard):
    exposed = _worker_metrics()
    for expr in _dashboard_exprs(dashboard["panels"]):
        labels = set().union(*(exposed.get(name, set()) for name in _metric_names(expr)))
        grouped = {label.strip() for group in _PROMQL_GROUPING.findall(expr) for label in group.split(",")}
        assert grouped <= labels, f"{expr}: no such label {sorted(grouped - labels)}"


def test_dashboard_panels_use_the_provisioned_datasource(dashboard, datasources):
    used = _datasource_uids(dashboard)
    assert used <= {source["uid"] for source in datasources}, used


# --- files ---------------------------------------------------------------------------------------------


def test_files_mounted_from_the_repository_exist(services):
    mounts = [(name, source) for name, service in services.items() for source in _bind_mounts(service).values()]
    assert mounts, "no service mounts anything from the repository"
    missing = [f"{name}: {source}" for name, source in mounts if not source.exists()]
    assert not missing, f"missing: {missing}"
