"""dashboards/ checked for real: promtool on every file and on every panel's PromQL, then a
live Prometheus scraping a real exchange under load answers every panel and alert query.

No Grafana server can run here, so the dashboards are checked by structure (the JSON
Grafana loads, as dashboards/build.py writes it), by promtool, and by running each panel's
query against Prometheus. Docker cannot run here either: deploy/compose is checked by
parsing it and following its mounts.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port, wait_for
from tests.exchange import MdExchange
from zex.protocol import messages as m

pytestmark = pytest.mark.integration

DASH = REPO / "dashboards"
COMPOSE = REPO / "deploy" / "compose" / "docker-compose.yml"
DATASOURCE_UID = "zex-prometheus"
UIDS = {"zex-overview", "zex-matcher", "zex-gateway", "zex-marketdata"}
DEFAULT_TARGETS = {
    "zex-matcher": "127.0.0.1:7111",
    "zex-gateway": "127.0.0.1:7112",
    "zex-marketdata": "127.0.0.1:7113",
    "zex-logger": "127.0.0.1:7114",
}
LIVE_WINDOW = "30s"  # what $__rate_interval becomes in the live test (1 s scrapes)

PROMETHEUS, PROMTOOL = shutil.which("prometheus"), shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(
    not (PROMETHEUS and PROMTOOL),
    reason="prometheus/promtool not installed: `make test` installs Debian's prometheus "
    "package when run as root; otherwise: sudo apt-get install prometheus",
)


# ------------------------------------------------------------------ the dashboards


def dashboards() -> dict[str, dict]:
    files = sorted((DASH / "grafana").glob("*.json"))
    assert files, "no dashboards in dashboards/grafana; run python dashboards/build.py"
    return {f.name: json.loads(f.read_text()) for f in files}


def panels(board: dict) -> list[dict]:
    """Every panel, including those inside collapsed rows."""
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels") or [])
    return out


def panel_queries(window: str) -> list[tuple[str, str]]:
    """[(where, expr)] for every target of every panel, $__rate_interval replaced by ``window``."""
    out = []
    for name, board in dashboards().items():
        for p in panels(board):
            for t in p.get("targets", []):
                where = f"{name} {p['title']!r} {t['refId']}"
                expr = t["expr"].replace("$__rate_interval", window)
                assert "$" not in expr, f"{where}: a Grafana variable the test cannot fill: {expr}"
                out.append((where, expr))
    return out


def nulls(node, path: str = ""):
    if node is None:
        yield path
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from nulls(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from nulls(v, f"{path}[{i}]")


def test_dashboards_are_complete_and_use_the_provisioned_datasource():
    boards = dashboards()
    uids = [b["uid"] for b in boards.values()]
    assert set(uids) >= UIDS and len(uids) == len(set(uids)), uids
    for name, board in boards.items():
        # Grafana writes a threshold's base step as value null (-Infinity); nothing else is null
        bad = [p for p in nulls(board) if not p.endswith(".thresholds.steps[0].value")]
        assert not bad, f"{name}: null at {bad}"
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids {ids}"
        for p in panels(board):
            where, g = f"{name} {p['title']!r}", p["gridPos"]
            assert g["x"] + g["w"] <= 24 and g["h"] > 0, f"{where}: gridPos {g}"
            if p["type"] == "row":
                continue
            assert isinstance(p.get("options"), dict) and p["options"], f"{where}: options unset"
            assert "defaults" in (p.get("fieldConfig") or {}), f"{where}: fieldConfig unset"
            assert p["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, where
            assert p.get("description"), f"{where}: no description"
            refs = [t["refId"] for t in p["targets"]]
            assert refs and all(refs) and len(refs) == len(set(refs)), f"{where}: refIds {refs}"
            for t in p["targets"]:
                assert t["datasource"]["uid"] == DATASOURCE_UID and t["expr"].strip(), where
            if p["type"] == "heatmap":
                assert p["targets"][0]["format"] == "heatmap", where
                assert p["options"]["calculate"] is False, where


def test_checked_in_json_is_what_build_py_writes():
    pytest.importorskip("grafana_foundation_sdk", reason="pip install -e '.[dashboards]'")
    spec = importlib.util.spec_from_file_location("zex_dashboards_build", DASH / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    built = build.render()
    on_disk = {f.name: f.read_text() for f in (DASH / "grafana").glob("*.json")}
    assert sorted(built) == sorted(on_disk)
    stale = [n for n in built if built[n] != on_disk[n]]
    assert not stale, f"{stale} are not what dashboards/build.py writes; run it"


# ------------------------------------------------------------------ provisioning and compose


def test_provisioning_and_compose_point_at_files_that_exist():
    yaml = pytest.importorskip("yaml", reason="pyyaml parses the provisioning and compose files")
    ds_file = DASH / "provisioning" / "datasources" / "prometheus.yml"
    ds = yaml.safe_load(ds_file.read_text())["datasources"]
    assert [d["uid"] for d in ds] == [DATASOURCE_UID] and ds[0]["type"] == "prometheus"
    # Grafana's $__rate_interval follows timeInterval: it must be the scrape interval
    assert ds[0]["jsonData"]["timeInterval"] == "5s"
    assert "scrape_interval: 5s" in (DASH / "prometheus.yml").read_text()
    provider_file = DASH / "provisioning" / "dashboards" / "zex.yml"
    providers = yaml.safe_load(provider_file.read_text())["providers"]
    assert [p["options"]["path"] for p in providers] == ["${ZEX_DASHBOARDS}"]

    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) == {"prometheus", "grafana"}
    mounts: dict[str, dict[str, Path]] = {}
    for name, svc in services.items():
        assert svc["network_mode"] == "host", f"{name}: the nodes' metrics are on 127.0.0.1"
        mounts[name] = {}
        for vol in svc["volumes"]:
            src, dst = vol.split(":")[:2]
            if src in compose.get("volumes", {}):
                continue  # a named volume
            path = (COMPOSE.parent / src).resolve()
            assert path.exists(), f"{name}: mount {vol}: {path} does not exist"
            mounts[name][dst] = path

    prom, command = mounts["prometheus"], services["prometheus"]["command"]
    assert prom["/etc/prometheus/prometheus.yml"] == DASH / "prometheus.yml"
    # rule_files in prometheus.yml is relative to the config's folder
    assert prom["/etc/prometheus/alerts.yml"] == DASH / "alerts.yml"
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    listen = next(a for a in command if a.startswith("--web.listen-address="))
    assert urllib.parse.urlsplit(ds[0]["url"]).netloc == listen.split("=", 1)[1]

    graf, env = mounts["grafana"], services["grafana"]["environment"]
    assert graf[env["GF_PATHS_PROVISIONING"]] == DASH / "provisioning"
    assert graf[env["ZEX_DASHBOARDS"]] == DASH / "grafana"
    home = Path(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (graf[str(home.parent)] / home.name).exists()


# ------------------------------------------------------------------ promtool


def promtool(*args: str) -> str:
    r = subprocess.run([PROMTOOL, *args], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, f"promtool {' '.join(args)}:\n{r.stdout}{r.stderr}"
    return r.stdout


@needs_prometheus
def test_promtool_accepts_the_config_the_rules_and_every_panel_query(tmp_path):
    promtool("check", "config", str(DASH / "prometheus.yml"))  # checks alerts.yml too
    for rules in sorted(DASH.glob("*.yml")):
        if rules.name != "prometheus.yml":
            promtool("check", "rules", str(rules))
    # promtool parses the expr of every rule it reads: one alert per panel query (JSON is YAML)
    queries = panel_queries("1m")
    rules = [
        {"alert": f"Panel{i}", "expr": expr, "annotations": {"where": where}}
        for i, (where, expr) in enumerate(queries)
    ]
    path = tmp_path / "panels.rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "panels", "rules": rules}]}, indent=1))
    assert f"SUCCESS: {len(queries)} rules found" in promtool("check", "rules", str(path))


# ------------------------------------------------------------------ live


def scrape_config(tmp: Path, ports: dict[str, int]) -> Path:
    """dashboards/prometheus.yml with 1 s intervals and the test's ports, beside alerts.yml."""
    text = (DASH / "prometheus.yml").read_text()
    edits = {
        "scrape_interval: 5s": "scrape_interval: 1s",
        "scrape_timeout: 4s": "scrape_timeout: 1s",
        "evaluation_interval: 5s": "evaluation_interval: 1s",
    }
    for job, port in ports.items():
        edits[f'"{DEFAULT_TARGETS[job]}"'] = f'"127.0.0.1:{port}"'
    for old, new in edits.items():
        assert text.count(old) == 1, f"dashboards/prometheus.yml: expected {old!r} once"
        text = text.replace(old, new)
    shutil.copy(DASH / "alerts.yml", tmp / "alerts.yml")
    path = tmp / "prometheus.yml"
    path.write_text(text)
    return path


class Prometheus:
    """A real prometheus process on a free loopback port, with its TSDB in ``tmp``."""

    def __init__(self, config: Path, tmp: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "prometheus.log"
        self._fh = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._fh,
            stderr=subprocess.STDOUT,
        )

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"prometheus exited with {self.proc.returncode}:\n{tail}")

    def get(self, path: str, **params) -> dict:
        self._check_alive()
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:  # a bad query: 400/422 with the error as JSON
            return json.load(e)

    def query(self, expr: str) -> dict:
        return self.get("/api/v1/query", query=expr)

    def ready(self) -> bool:
        self._check_alive()
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._fh.close()


def has_data(answer: dict) -> bool:
    """A successful query with at least one series whose value is a number (not NaN)."""
    if answer.get("status") != "success":
        return False
    data = answer["data"]
    if data["resultType"] == "scalar":
        return data["result"][1] != "NaN"
    return any(s["value"][1] != "NaN" for s in data["result"])


class Load(threading.Thread):
    """Trade through the gateway until stopped; each round adds a gateway and a matcher reject."""

    def __init__(self, ex: MdExchange) -> None:
        super().__init__(name="dashboards-load", daemon=True)
        self.ex = ex
        self.stopping = threading.Event()
        self.rounds = 0
        self.error: Exception | None = None

    def run(self) -> None:
        try:
            c = self.ex.client("mm")
            while not self.stopping.is_set():
                self.ex.flow(150, seed=self.rounds)
                off_tick = c.place("XYZ", "buy", 1, "9.001")  # a gateway reject, 202
                gone = c.cancel("XYZ", 10**9)  # a matcher reject, 500
                assert isinstance(off_tick, m.Reject), off_tick
                assert isinstance(gone, m.Reject), gone
                self.rounds += 1
        except Exception as exc:  # noqa: BLE001 - raised in the test's thread by stop()
            self.error = exc

    def stop(self) -> None:
        self.stopping.set()
        self.join(30)
        assert not self.is_alive(), "the load thread did not stop"
        if self.error is not None:
            raise AssertionError(f"the load thread failed: {self.error!r}") from self.error


def alert_rules(prom: Prometheus) -> list[dict] | None:
    """The alerting rules Prometheus loaded, once every one has been evaluated."""
    groups = prom.get("/api/v1/rules", type="alert")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    # lastEvaluation is 0001-01-01T00:00:00Z until the first evaluation
    done = rules and all(not r["lastEvaluation"].startswith("0001") for r in rules)
    return rules if done else None


@needs_prometheus
def test_every_panel_and_alert_query_answers_from_a_live_exchange(tmp_path, nodes):
    ex = MdExchange(tmp_path, nodes)
    prom = load = None
    try:
        for node in ("matcher", "logger", "marketdata", "gateway"):
            ex.start(node)
        wait_for(
            lambda: ex.metrics("marketdata").get("zex_marketdata_live") == 1, 15, "marketdata live"
        )
        load = Load(ex)
        load.start()

        ports = {
            "zex-matcher": ex.ports[7],
            "zex-gateway": ex.ports[8],
            "zex-marketdata": ex.ports[6],
            "zex-logger": ex.ports[10],
        }
        prom = Prometheus(scrape_config(tmp_path, ports), tmp_path)
        wait_for(prom.ready, 15, "prometheus /-/ready", interval=0.2)

        def all_up():  # the first scrape lands ~6 s after start
            result = prom.query('up{job=~"zex-.*"} == 1')["data"]["result"]
            return result if len(result) == len(ports) else None

        up = wait_for(all_up, 30, "every zex target up in prometheus", interval=0.5)
        assert {s["metric"]["node"] for s in up} == {"matcher", "gateway", "marketdata", "logger"}

        # each rate() needs two scrapes with load between them; a labelled series (rejects by
        # reason) exists from its first reject on
        queries = dict(panel_queries(LIVE_WINDOW))
        pending = dict(queries)

        def all_answer() -> bool:
            for where, expr in list(pending.items()):
                if has_data(prom.query(expr)):
                    del pending[where]
            return not pending

        try:
            wait_for(all_answer, 40, "every panel query to return data", interval=1.0)
        except TimeoutError:
            pass  # reported below, query by query
        answers = {where: prom.query(expr) for where, expr in queries.items()}
        failed = {where: a for where, a in answers.items() if not has_data(a)}
        assert not failed, "panel queries with no data:\n" + "\n".join(
            f"  {w}: {queries[w]}\n    -> {json.dumps(a)[:300]}" for w, a in failed.items()
        )

        # every alert: loaded, evaluated without error, its expr a valid query (empty is fine)
        rules = wait_for(lambda: alert_rules(prom), 15, "alert rules evaluated", interval=0.5)
        checked = promtool("check", "rules", str(DASH / "alerts.yml"))
        assert f"SUCCESS: {len(rules)} rules found" in checked, checked
        for r in rules:
            assert r["health"] == "ok", f"alert {r['name']}: {r.get('lastError')}"
            answer = prom.query(r["query"])
            assert answer["status"] == "success", f"alert {r['name']}: {answer.get('error')}"
        firing = [r["name"] for r in rules if r["state"] == "firing"]
        assert not {"ZexNodeDown", "ZexEventsLost", "ZexUndecodableInternalFrames"} & set(firing)
        assert load.rounds > 0
    finally:
        try:
            if load is not None:
                load.stop()
        finally:
            if prom is not None:
                prom.stop()
            ex.close()
