"""The Kubernetes manifests in deploy/kubernetes, checked offline.

No cluster runs in CI, so this reads the YAML (python3-yaml) and holds it
against what it must agree with: the image (docker/Dockerfile: uid, ports,
volume, configuration path, environment), the bridge's own configuration keys
(`hookbridge --help`, `--check-config`, librdkafka for kafka.* properties) and
the shutdown arithmetic. Run by ctest as deploy.manifests; HB_BIN names the
binary (default build/hookbridge)."""

import ctypes
import ctypes.util
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

try:
    import yaml
except ImportError:  # fail, not skip: a missing parser must not look like a pass
    sys.exit("python3-yaml is missing: scripts/install-deps.sh --test installs it")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
K8S = os.path.join(REPO, "deploy", "kubernetes")
HB_BIN = os.environ.get("HB_BIN") or os.path.join(REPO, "build", "hookbridge")


def load_docs(name):
    with open(os.path.join(K8S, name), encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def parse_dockerfile(path):
    """The runtime stage of a Dockerfile: {ENV: {..}, EXPOSE: [..], CMD: [..],
    VOLUME: [..], USER: str, uid: int}."""
    with open(path, encoding="utf-8") as f:
        text = re.sub(r"\\\n", " ", f.read())
    stages, cur = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            cur = {"FROM": rest.strip(), "ENV": {}, "EXPOSE": [], "VOLUME": [], "RUN": []}
            stages.append(cur)
        elif instr == "ENV":
            for tok in shlex.split(rest):
                k, _, v = tok.partition("=")
                cur["ENV"][k] = v
        elif instr == "EXPOSE":
            cur["EXPOSE"] += [int(p.split("/")[0]) for p in rest.split()]
        elif instr in ("CMD", "ENTRYPOINT"):
            cur[instr] = json.loads(rest)
        elif instr == "VOLUME":
            cur["VOLUME"] += json.loads(rest) if rest.strip().startswith("[") else rest.split()
        elif instr == "USER":
            cur["USER"] = rest.strip()
        elif instr == "RUN":
            cur["RUN"].append(rest)
    rt = stages[-1]
    m = re.search(r"useradd\b[^&;]*--uid\s+(\d+)", " ".join(rt["RUN"]))
    rt["uid"] = int(m.group(1)) if m else None
    return rt


def parse_conf(text):
    """key = value lines -> dict (comments and blank lines dropped)."""
    out = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        k, eq, v = line.partition("=")
        if not eq:
            raise AssertionError("ConfigMap line %d is not key = value: %r" % (n, line))
        out[k.strip()] = v.strip()
    return out


def env_name(key):
    return "HOOKBRIDGE_" + re.sub(r"[.-]", "_", key).upper()


def help_keys():
    """The configuration keys `hookbridge --help` lists (the key table)."""
    if not os.access(HB_BIN, os.X_OK):
        raise AssertionError("hookbridge binary not found at %r (build it or set HB_BIN)" % HB_BIN)
    out = subprocess.run([HB_BIN, "--help"], capture_output=True, text=True, timeout=30).stdout
    section = out.split("Configuration keys", 1)[1]
    keys = set(re.findall(r"^  ([a-z][a-z0-9_.]*[a-z0-9])\s{2,}", section, re.M))
    if len(keys) < 20:
        raise AssertionError("could not read the keys from --help:\n%s" % out)
    return keys


def port_of(listen):
    return int(listen.rsplit(":", 1)[1])


def storage_bytes(q):
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti|k|M|G|T)?", q)
    mult = {None: 1, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40,
            "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
    return int(m.group(1)) * mult[m.group(2)]


def size_bytes(v):
    m = re.fullmatch(r"(\d+)([kmg]?)", v.lower())
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2)]


def ms(v):
    return int(v)


class Manifests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        kust = load_docs("kustomization.yaml")[0]
        cls.kust = kust
        cls.docs = []
        for r in kust["resources"]:
            cls.docs += load_docs(r)
        cls.by_kind = {}
        for d in cls.docs:
            cls.by_kind.setdefault(d["kind"], []).append(d)
        cls.sts = cls.one("StatefulSet")
        cls.pod = cls.sts["spec"]["template"]["spec"]
        cls.ctr = cls.pod["containers"][0]
        cls.image = parse_dockerfile(os.path.join(REPO, "docker", "Dockerfile"))
        cls.cm = cls.one("ConfigMap")
        args = cls.ctr.get("args") or cls.image["CMD"]
        cls.conf_path = args[args.index("-c") + 1]
        cls.conf_text = cls.cm["data"][os.path.basename(cls.conf_path)]
        cls.conf = parse_conf(cls.conf_text)

    @classmethod
    def one(cls, kind):
        docs = cls.by_kind.get(kind, [])
        assert len(docs) == 1, "expected one %s, found %d" % (kind, len(docs))
        return docs[0]

    def effective(self, key, default=None):
        """A key's value in the running container: the container's env, then
        the image's ENV, then the ConfigMap file, then the default."""
        name = env_name(key)
        for e in self.ctr.get("env", []):
            if e["name"] == name:
                return e["value"]
        if name in self.image["ENV"]:
            return self.image["ENV"][name]
        return self.conf.get(key, default)

    def mount_for(self, path):
        """The container's volumeMount whose mountPath holds path."""
        best = None
        for m in self.ctr.get("volumeMounts", []):
            mp = m["mountPath"].rstrip("/")
            if path == mp or path.startswith(mp + "/"):
                if best is None or len(mp) > len(best["mountPath"]):
                    best = m
        self.assertIsNotNone(best, "%s is on no volume" % path)
        return best

    def volume(self, name):
        for v in self.pod.get("volumes", []):
            if v["name"] == name:
                return v
        self.fail("no volume named %s" % name)

    def test_every_file_is_a_resource_and_has_the_required_fields(self):
        files = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml")
        self.assertEqual(sorted(self.kust["resources"]), files)
        for d in self.docs:
            for f in ("apiVersion", "kind", "metadata"):
                self.assertIn(f, d, "%s lacks %s" % (d.get("kind"), f))
            self.assertTrue(d["metadata"].get("name"), d["kind"])
        self.assertEqual(self.sts["apiVersion"], "apps/v1")
        self.assertEqual(self.one("PodDisruptionBudget")["apiVersion"], "policy/v1")
        for f in ("serviceName", "selector", "template", "volumeClaimTemplates", "replicas"):
            self.assertIn(f, self.sts["spec"])

    def test_selectors_match_the_pods(self):
        labels = self.sts["spec"]["template"]["metadata"]["labels"]
        sel = self.sts["spec"]["selector"]["matchLabels"]
        self.assertLessEqual(sel.items(), labels.items())
        for svc in self.by_kind["Service"]:
            self.assertLessEqual(svc["spec"]["selector"].items(), labels.items(),
                                 svc["metadata"]["name"])
        pdb = self.one("PodDisruptionBudget")
        self.assertLessEqual(pdb["spec"]["selector"]["matchLabels"].items(), labels.items())
        self.assertLess(pdb["spec"]["maxUnavailable"], self.sts["spec"]["replicas"])

    def test_the_governing_service_is_headless(self):
        names = {s["metadata"]["name"]: s for s in self.by_kind["Service"]}
        gov = names.get(self.sts["spec"]["serviceName"])
        self.assertIsNotNone(gov, "serviceName names no Service")
        self.assertEqual(gov["spec"].get("clusterIP"), "None")

    def test_image_is_the_one_the_project_builds(self):
        with open(os.path.join(REPO, "docker-compose.yml"), encoding="utf-8") as f:
            compose = yaml.safe_load(f)
        built = compose["services"]["hookbridge"]["image"]
        repo, _, tag = self.ctr["image"].partition(":")
        for img in self.kust.get("images", []):
            if img["name"] == repo:
                repo, tag = img.get("newName", repo), img.get("newTag", tag)
        self.assertEqual("%s:%s" % (repo, tag), built)
        self.assertEqual(self.ctr.get("command"), None, "the image's ENTRYPOINT is the bridge")

    def test_ports_match_the_image_and_the_configuration(self):
        ports = {p["name"]: p["containerPort"] for p in self.ctr["ports"]}
        https = port_of(self.effective("listen", "0.0.0.0:8443"))
        admin_listen = self.effective("admin.listen", "127.0.0.1:9090")
        self.assertEqual(ports["https"], https)
        self.assertEqual(ports["admin"], port_of(admin_listen))
        self.assertFalse(admin_listen.startswith("127.") or admin_listen.startswith("[::1]"),
                         "admin.listen on loopback: the kubelet's probes cannot reach it")
        self.assertEqual(sorted(self.image["EXPOSE"]), sorted(ports.values()))

    def test_configmap_agrees_with_the_image_environment(self):
        # The image's HOOKBRIDGE_* variables override the file: a ConfigMap
        # value that differs would silently do nothing.
        for key, value in self.conf.items():
            name = env_name(key)
            if name in self.image["ENV"]:
                self.assertEqual(value, self.image["ENV"][name],
                                 "%s in the ConfigMap is overridden by the image's %s" % (key, name))

    def test_public_service_does_not_expose_the_admin_port(self):
        public = [s for s in self.by_kind["Service"] if s["spec"].get("clusterIP") != "None"]
        self.assertEqual(len(public), 1)
        targets = {p["targetPort"] for p in public[0]["spec"]["ports"]}
        self.assertEqual(targets, {"https"})
        headless = [s for s in self.by_kind["Service"] if s["spec"].get("clusterIP") == "None"]
        self.assertIn("admin", {p["targetPort"] for s in headless for p in s["spec"]["ports"]})
        ann = self.sts["spec"]["template"]["metadata"].get("annotations", {})
        port = {p["name"]: p["containerPort"] for p in self.ctr["ports"]}["admin"]
        self.assertEqual(ann.get("prometheus.io/port"), str(port))

    def test_probes(self):
        live, ready = self.ctr["livenessProbe"]["httpGet"], self.ctr["readinessProbe"]["httpGet"]
        self.assertEqual((live["path"], live["port"]), ("/healthz", "admin"))
        # the journal's readiness, not the sinks': see statefulset.yaml
        self.assertEqual((ready["path"], ready["port"]), ("/readyz/accepting", "admin"))
        # the admin port answers only after journal recovery: a startup probe
        # holds liveness off for minutes, not the liveness probe's seconds
        start = self.ctr["startupProbe"]
        self.assertEqual(start["httpGet"]["path"], "/healthz")
        self.assertGreaterEqual(start["periodSeconds"] * start["failureThreshold"], 300)
        # the same paths are answered by a live bridge: tests/deploy/test_monitoring.py

    def test_journal_is_on_a_volume_per_replica_at_the_image_data_dir(self):
        vct = {v["metadata"]["name"]: v for v in self.sts["spec"]["volumeClaimTemplates"]}
        data_dir = self.image["ENV"]["HOOKBRIDGE_DATA_DIR"]
        self.assertIn(data_dir, self.image["VOLUME"])
        m = self.mount_for(data_dir)
        self.assertEqual(m["mountPath"], data_dir)
        self.assertIn(m["name"], vct, "the data dir is not on a volumeClaimTemplate")
        for key in ("data.dir", "journal.dir"):
            self.assertIs(self.mount_for(self.effective(key))["name"], m["name"], key)
        self.assertEqual(self.sts["spec"]["persistentVolumeClaimRetentionPolicy"],
                         {"whenDeleted": "Retain", "whenScaled": "Retain"})
        # The volume holds the whole journal plus room to spare.
        need = size_bytes(self.effective("journal.max_bytes", "1073741824"))
        need += size_bytes(self.effective("journal.retain_bytes", "0"))
        have = storage_bytes(vct[m["name"]]["spec"]["resources"]["requests"]["storage"])
        self.assertGreaterEqual(have, need * 1.1)

    def test_runs_as_the_image_user(self):
        sc = self.pod["securityContext"]
        self.assertIsNotNone(self.image["uid"])
        self.assertEqual(sc["runAsUser"], self.image["uid"])
        self.assertEqual(sc["fsGroup"], self.image["uid"])
        self.assertTrue(sc["runAsNonRoot"])
        self.assertEqual(self.image.get("USER"), "hookbridge")

    def test_termination_lets_sigterm_drain(self):
        pre = self.ctr["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre[0], "sleep")
        grace_ms = ms(self.effective("shutdown.grace_ms", "10000"))
        # the pod's grace period covers the preStop sleep, the sinks' flush and
        # a margin to answer in-flight requests and close the journal
        self.assertGreaterEqual(self.pod["terminationGracePeriodSeconds"],
                                int(pre[1]) + grace_ms / 1000 + 5)

    def test_service_links_are_off(self):
        # a Service named hookbridge-kafka would inject HOOKBRIDGE_KAFKA_*
        # variables that the bridge reads as librdkafka properties
        self.assertIs(self.pod.get("enableServiceLinks"), False)

    def test_config_is_mounted_where_the_image_reads_it(self):
        self.assertEqual(self.conf_path, self.image["CMD"][self.image["CMD"].index("-c") + 1])
        m = self.mount_for(self.conf_path)
        self.assertEqual(m["mountPath"], os.path.dirname(self.conf_path))
        self.assertEqual(self.volume(m["name"])["configMap"]["name"], self.cm["metadata"]["name"])

    def test_secrets_come_from_secrets(self):
        secret_paths = {}
        volumes = {v["name"]: v for v in self.pod["volumes"]}
        for m in self.ctr["volumeMounts"]:
            v = volumes.get(m["name"], {})
            srcs = v.get("projected", {}).get("sources", [])
            if "secret" in v:
                srcs = [{"secret": v["secret"]}]
            for s in srcs:
                if "secret" in s:
                    for it in s["secret"]["items"]:
                        secret_paths[os.path.join(m["mountPath"], it["path"])] = s["secret"]["name"]
        sec = self.conf["intercom.secret"]
        self.assertTrue(sec.startswith("file:/run/secrets/"), "intercom.secret = %s" % sec)
        self.assertIn(sec[len("file:"):], secret_paths)
        for key in ("tls.cert", "tls.key"):
            self.assertIn(self.conf[key], secret_paths, key)

    def test_configmap_keys_are_real(self):
        known = help_keys()
        for key in self.conf:
            if key.startswith("kafka.") and key not in known:
                continue  # librdkafka properties: test_kafka_properties_are_real
            self.assertIn(key, known, "ConfigMap key %s is not a hookbridge key" % key)

    def test_kafka_properties_are_real(self):
        # --check-config asks librdkafka only with the Kafka sink on, and builds a
        # producer to do it; ask it here, property by property, whatever the sinks.
        lib = ctypes.CDLL(ctypes.util.find_library("rdkafka") or "librdkafka.so.1")
        lib.rd_kafka_conf_new.restype = ctypes.c_void_p
        lib.rd_kafka_conf_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p,
                                          ctypes.c_char_p, ctypes.c_size_t]
        lib.rd_kafka_conf_destroy.argtypes = [ctypes.c_void_p]
        conf = lib.rd_kafka_conf_new()
        own = set(help_keys())
        props = {k[len("kafka."):]: v for k, v in self.conf.items()
                 if k.startswith("kafka.") and k not in own}
        self.assertTrue(props, "expected librdkafka properties in the ConfigMap")
        # the commented-out SASL lines are meant to be uncommented: check them too
        for line in self.conf_text.splitlines():
            m = re.match(r"\s*#\s*kafka\.([a-z0-9._]+)\s*=\s*(\S+)", line)
            if m:
                props[m.group(1)] = m.group(2).replace("file:/run/secrets/kafka_password", "x")
        try:
            for name, value in props.items():
                err = ctypes.create_string_buffer(512)
                rc = lib.rd_kafka_conf_set(conf, name.encode(), value.encode(), err, 512)
                self.assertEqual(rc, 0, "kafka.%s = %s: %s" % (name, value, err.value.decode()))
        finally:
            lib.rd_kafka_conf_destroy(conf)

    def test_configmap_passes_check_config(self):
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
            f.write(self.conf_text)
            f.flush()
            env = {k: v for k, v in os.environ.items() if not k.startswith("HOOKBRIDGE_")}
            env.update(self.image["ENV"])
            env["HOOKBRIDGE_INTERCOM_SECRET"] = "x"  # the Secret is not here
            r = subprocess.run([HB_BIN, "--check-config", "-c", f.name], env=env,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
