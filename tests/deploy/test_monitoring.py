"""deploy/prometheus/alerts.yml and deploy/grafana/hookbridge.json, checked.

- promtool check rules accepts the alerts, and promtool test rules passes the
  alerts' unit tests (alerts.test.yml: each fires on its condition, not before
  its `for`);
- every PromQL expression of the dashboard parses (promtool, as recording
  rules with Grafana's variables filled in);
- every metric those expressions name, and every label they select or group
  by, is in the /metrics of a live bridge (file sink, as in the integration
  tests), and the probe paths of deploy/kubernetes answer 200 there.
Run by ctest as deploy.monitoring."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import hbtest  # noqa: E402

try:
    import yaml
except ImportError:  # fail, not skip
    sys.exit("python3-yaml is missing: scripts/install-deps.sh --test installs it")

ALERTS = os.path.join(REPO, "deploy", "prometheus", "alerts.yml")
ALERT_TESTS = os.path.join(REPO, "deploy", "prometheus", "alerts.test.yml")
DASHBOARD = os.path.join(REPO, "deploy", "grafana", "hookbridge.json")
STATEFULSET = os.path.join(REPO, "deploy", "kubernetes", "statefulset.yaml")
# Labels Prometheus adds when it scrapes, and the histogram bucket label.
SCRAPE_LABELS = {"instance", "job", "le"}


def promtool(*args):
    exe = shutil.which("promtool")
    if not exe:
        raise AssertionError("promtool not found: install Debian's prometheus package "
                             "(scripts/install-deps.sh --test)")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def alert_exprs():
    with open(ALERTS, encoding="utf-8") as f:
        groups = yaml.safe_load(f)["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"]}


def load_dashboard():
    with open(DASHBOARD, encoding="utf-8") as f:
        return json.load(f)


def dashboard_exprs(dash):
    """{panel title / refId: expr} with Grafana's variables made PromQL."""
    out = {}
    for p in dash["panels"]:
        for t in p.get("targets", []):
            e = t["expr"]
            e = e.replace("$__rate_interval", "5m").replace("$__range", "1h")
            e = re.sub(r"\$\{?(\w+)\}?", ".*", e)
            out["%s / %s" % (p["title"], t["refId"])] = e
    return out


def names_in(expr):
    """Metric names and label names a PromQL expression uses."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # no identifiers inside strings
    labels = set()
    for sel in re.findall(r"\{([^}]*)\}", expr):
        labels |= set(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", sel))
    for grp in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels |= {x.strip() for x in grp.split(",") if x.strip()}
    metrics = set(re.findall(r"\b(hookbridge_[a-zA-Z0-9_:]*)", expr))
    return metrics, labels


class Rules(unittest.TestCase):
    def test_promtool_accepts_the_alerts(self):
        r = promtool("check", "rules", ALERTS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS", r.stdout)

    def test_alerts_fire_when_they_should(self):
        r = promtool("test", "rules", ALERT_TESTS)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_the_four_alerts_of_issue_13_exist(self):
        exprs = alert_exprs()
        want = {"journal over 80 %": "hookbridge_journal_max_bytes",
                "a sink not ready": "hookbridge_sink_ready",
                "dead letters increasing": "hookbridge_sink_dead_lettered_total",
                "5xx ratio": 'status=~"5.."'}
        for what, needle in want.items():
            self.assertTrue(any(needle in e for e in exprs.values()), what)

    def test_dashboard_expressions_parse(self):
        rules = [{"record": "hookbridge:dashboard:%d" % i, "expr": e}
                 for i, e in enumerate(dashboard_exprs(load_dashboard()).values())]
        self.assertGreaterEqual(len(rules), 10)
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as f:
            yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
            f.flush()
            r = promtool("check", "rules", f.name)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_dashboard_is_well_formed(self):
        dash = load_dashboard()
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids repeat")
        variables = {v["name"] for v in dash["templating"]["list"]}
        for p in dash["panels"]:
            self.assertTrue({"x", "y", "w", "h"} <= p["gridPos"].keys(), p["title"])
            for t in p.get("targets", []):
                for v in re.findall(r"\$\{?(\w+)\}?", t["expr"]):
                    self.assertTrue(v in variables or v.startswith("__"),
                                    "%s: unknown variable $%s" % (p["title"], v))
        titles = " ".join(p["title"].lower() for p in dash["panels"])
        for want in ("status", "durable-ack latency", "journal bytes", "pending", "errors",
                     "dead letters", "batch size", "fdatasync"):
            self.assertIn(want, titles)


class AgainstLiveBridge(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.bridge = hbtest.Bridge()
        try:
            body = hbtest.notification("deploy-monitoring-1")
            st, _, _ = cls.bridge.request("POST", cls.bridge.intercom_path, body,
                                          {"X-Hub-Signature": hbtest.sign(body),
                                           "Content-Type": "application/json"})
            assert st == 200, "signed POST answered %d" % st
            st, _, text = cls.bridge.admin_get("/metrics")
            assert st == 200, "/metrics answered %d" % st
            cls.samples = hbtest.parse_metrics(text.decode() if isinstance(text, bytes) else text)
        except BaseException:
            cls.bridge.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.bridge.cleanup()

    def check(self, exprs):
        metrics = {n for n, _, _ in self.samples}
        labels = set(SCRAPE_LABELS)
        for _, l, _ in self.samples:
            labels |= l.keys()
        for where, e in exprs.items():
            m, l = names_in(e)
            self.assertTrue(m, "%s names no hookbridge metric" % where)
            self.assertEqual(m - metrics, set(), "%s: not in /metrics" % where)
            self.assertEqual(l - labels, set(), "%s: labels not in /metrics" % where)

    def test_alert_metrics_exist(self):
        self.check(alert_exprs())

    def test_dashboard_metrics_exist(self):
        dash = load_dashboard()
        exprs = dashboard_exprs(dash)
        for v in dash["templating"]["list"]:
            if v["type"] == "query":
                exprs["variable " + v["name"]] = v["definition"]
        self.check(exprs)

    def test_probe_paths_answer(self):
        with open(STATEFULSET, encoding="utf-8") as f:
            ctr = yaml.safe_load(f)["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = ctr[probe]["httpGet"]["path"]
            st, _, _ = self.bridge.admin_get(path)
            self.assertEqual(st, 200, "%s %s" % (probe, path))


if __name__ == "__main__":
    unittest.main(verbosity=2)
