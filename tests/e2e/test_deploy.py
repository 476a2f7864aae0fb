"""The deployment files under deploy/, checked without a cluster, a container engine or helm
(none of them is a Debian 12 package):

- yamllint over the YAML files of deploy/ that are not Go templates (.yamllint at the top);
- the Helm chart: Chart.yaml fields; each template with its Go-template actions blanked parses
  as YAML and is of the expected kind and apiVersion; every `.Values.x.y` a template reads is
  declared in values.yaml and every value is read; the tenant example sets only declared values;
  the Deployment's command, probes, volumes and security settings; the chart's `config` (alone
  and merged with the tenant example) and the Secret's variable names pass
  `metasync config --check`; `helm lint` and `helm template` where helm exists;
- the systemd unit: `systemd-analyze verify` without warnings, `systemd-analyze security` exposure,
  the directives the service relies on, its example configuration;
- the Containerfile: its stages, user, port, health check and entry point; its build stage
  installs the -dev packages of scripts/install-deps.sh; its runtime packages exist in Debian 12
  and provide every shared library build/metasync loads.

The deployment does not depend on how the binary was built, so the ASan pass skips this file.
"""
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import BIN, REPO, SANITIZED, child_env

pytestmark = pytest.mark.skipif(SANITIZED, reason="deployment files do not depend on the build")

CHART = REPO / "deploy" / "helm" / "metasync"
TEMPLATES = CHART / "templates"
UNIT = REPO / "deploy" / "systemd" / "metasync.service"
CONTAINERFILE = REPO / "deploy" / "Containerfile"

# install-deps.sh packages that only the tests or the fuzz build need, not the binary.
TEST_ONLY_DEV = {"libcmocka-dev", "libclang-rt-14-dev"}
# Free-form mappings and lists of values.yaml: whatever is below them is the user's.
FREE_FORM = ("config",)


def need_bin():
    if not Path(BIN).exists():
        pytest.skip(f"no metasync binary at {BIN}")


def load(path):
    return yaml.safe_load(Path(path).read_text())


def values():
    return load(CHART / "values.yaml")


def merged(base, over):
    """over deep-merged into base, as helm merges -f files into values.yaml."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def config_check(cfg, tmp_path, env=None):
    """Runs `metasync config --check --config FILE` on the mapping cfg; returns the result."""
    f = tmp_path / "metasync.yaml"
    f.write_text(yaml.safe_dump(cfg))
    return subprocess.run([BIN, "config", "--check", "--config", str(f)], env=child_env(env),
                          capture_output=True, text=True, timeout=30)


# ---- YAML lint ----------------------------------------------------------------------------------

def test_yamllint():
    if not shutil.which("yamllint"):
        pytest.skip("yamllint is not installed (scripts/install-deps.sh installs it)")
    # deploy/ only: YAML elsewhere may be test input that is malformed on purpose.
    r = subprocess.run(["yamllint", "-s", "-c", ".yamllint", ".yamllint", "deploy"], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# ---- Helm chart ---------------------------------------------------------------------------------

ACTION = re.compile(r"\{\{-?.*?-?\}\}")


def blank_template(text):
    """The YAML a template would give, structure-wise: lines holding only actions ({{- if }},
    {{- end }}, {{- toYaml . | nindent 4 }}...) are dropped, actions inside a line become the
    scalar TEMPLATE. Both branches of an if/else are kept (duplicate keys are allowed here)."""
    out = []
    for line in text.splitlines():
        if line.strip() and not ACTION.sub("", line).strip():
            continue
        out.append(ACTION.sub("TEMPLATE", line))
    return "\n".join(out) + "\n"


def rendered_docs():
    """{template file name: [its YAML documents]}, each template blanked."""
    docs = {}
    for f in sorted(TEMPLATES.glob("*.yaml")):
        docs[f.name] = [d for d in yaml.safe_load_all(blank_template(f.read_text())) if d]
    return docs


def by_kind():
    kinds = {}
    for name, ds in rendered_docs().items():
        for d in ds:
            kinds.setdefault(d["kind"], []).append(d)
    return kinds


def test_chart_yaml():
    c = load(CHART / "Chart.yaml")
    assert c["apiVersion"] == "v2" and c["name"] == "metasync" and c["type"] == "application"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", c["version"]), c["version"]
    project = re.search(r"project\(metasync VERSION (\S+)", (REPO / "CMakeLists.txt").read_text())
    assert c["appVersion"] == project.group(1), "appVersion differs from CMakeLists.txt's VERSION"
    assert c.get("description")


def test_templates_parse_and_kinds():
    expected = {
        "Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1",
        "ServiceAccount": "v1", "HorizontalPodAutoscaler": "autoscaling/v2",
        "PodDisruptionBudget": "policy/v1", "ServiceMonitor": "monitoring.coreos.com/v1",
    }
    kinds = by_kind()
    assert set(kinds) == set(expected)
    for kind, api in expected.items():
        for d in kinds[kind]:
            assert d["apiVersion"] == api, kind
            assert d["metadata"]["name"] == "TEMPLATE", f"{kind} not named after the release"
            assert "labels" in d["metadata"], kind
    for f in TEMPLATES.iterdir():
        assert f.suffix in (".yaml", ".tpl", ".txt"), f"unexpected file {f.name}"
        text = f.read_text()
        assert text.count("{{") == text.count("}}"), f"unbalanced braces in {f.name}"
        opened = len(re.findall(r"\{\{-?\s*(if|with|range|define)\b", text))
        closed = len(re.findall(r"\{\{-?\s*end\s*-?\}\}", text))
        assert opened == closed, f"{f.name}: {opened} if/with/range/define, {closed} end"


def value_paths(d, prefix=()):
    """Every path of values.yaml: (a,), (a, b)..., down to leaves."""
    for k, v in d.items():
        p = prefix + (k,)
        yield p
        if isinstance(v, dict) and p[0] not in FREE_FORM:
            yield from value_paths(v, p)


def referenced_paths():
    refs = set()
    for f in TEMPLATES.iterdir():
        for m in re.finditer(r"\.Values((?:\.[A-Za-z_][A-Za-z0-9_]*)+)", f.read_text()):
            refs.add(tuple(m.group(1)[1:].split(".")))
    return refs


def lookup(d, path):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            raise KeyError(".".join(path))
        d = d[k]
    return d


def test_values_referenced_exist_and_every_value_is_used():
    v = values()
    refs = referenced_paths()
    missing = []
    for r in sorted(refs):
        try:
            lookup(v, r)
        except KeyError:
            missing.append(".".join(r))
    assert not missing, f"templates read values that values.yaml does not declare: {missing}"
    unused = [".".join(p) for p in value_paths(v)
              if not any(r[:len(p)] == p or p[:len(r)] == r for r in refs)]
    assert not unused, f"values.yaml declares values no template reads: {unused}"


def test_tenant_example_sets_only_declared_values():
    v = values()
    t = load(CHART / "values-tenant-example.yaml")

    def walk(d, prefix=()):
        for k, val in d.items():
            p = prefix + (k,)
            try:
                declared = lookup(v, p)
            except KeyError:
                parent = lookup(v, prefix) if prefix else v
                assert prefix and (parent == {} or prefix[0] in FREE_FORM), \
                    f"values-tenant-example.yaml sets {'.'.join(p)}, which values.yaml lacks"
                continue
            if isinstance(val, dict) and isinstance(declared, dict) and declared:
                walk(val, p)
    walk(t)


def test_tenant_example_is_isolated():
    base, t = values()["config"], merged(values(), load(CHART / "values-tenant-example.yaml"))
    cfg = t["config"]
    for key in ("group_id", "topics", "bulk_topics", "changes_topic", "dlq_topic"):
        assert cfg["kafka"][key] != base["kafka"][key], f"tenant shares kafka.{key}"
    assert cfg["kafka"]["brokers"]
    assert cfg["store"]["url"].startswith("postgres://")
    assert cfg["snapshots"]["url"].startswith("s3://")
    assert len(cfg["snapshots"]["url"].split("/")) > 3, "snapshots.url has no per-tenant prefix"
    assert t["secret"]["existingSecret"] and not t["secret"]["create"]
    assert t["autoscaling"]["enabled"] and t["autoscaling"]["kafkaLag"]["enabled"]


def test_deployment():
    (dep,) = by_kind()["Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"][:4] == ["metasync", "serve", "--listen", "0.0.0.0:TEMPLATE"]
    assert c["command"][4:] == ["--config", "/etc/metasync/metasync.yaml"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["envFrom"][0]["secretRef"]["name"] == "TEMPLATE"
    assert c["ports"][0]["name"] == "http"
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    vols = {vol["name"]: vol for vol in pod["volumes"]}
    assert mounts["config"]["mountPath"] == "/etc/metasync" and mounts["config"]["readOnly"]
    assert "configMap" in vols["config"]
    assert "emptyDir" in vols["data"] and "emptyDir" in vols["tmp"]
    assert mounts["tmp"]["mountPath"] == "/tmp"
    assert "mountPath: {{ .Values.config.data_dir }}" in (TEMPLATES / "deployment.yaml").read_text()
    (cm,) = by_kind()["ConfigMap"]
    assert list(cm["data"]) == ["metasync.yaml"]
    v = values()
    assert v["config"]["data_dir"] == "/var/lib/metasync"
    assert v["podSecurityContext"]["runAsNonRoot"] is True
    assert v["podSecurityContext"]["runAsUser"] != 0
    assert v["securityContext"]["readOnlyRootFilesystem"] is True
    assert v["securityContext"]["allowPrivilegeEscalation"] is False
    assert v["resources"]["requests"] and v["resources"]["limits"]
    (svc,) = by_kind()["Service"]
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    (sm,) = by_kind()["ServiceMonitor"]
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert "{{- if .Values.serviceMonitor.enabled }}" in (TEMPLATES / "servicemonitor.yaml").read_text()


def test_hpa_scales_on_cpu_and_kafka_lag():
    (hpa,) = by_kind()["HorizontalPodAutoscaler"]
    types = [m["type"] for m in hpa["spec"]["metrics"]]
    assert types == ["Resource", "Pods", "External"]
    ext = hpa["spec"]["metrics"][2]["external"]
    assert ext["metric"]["selector"]["matchLabels"]["consumergroup"] == "TEMPLATE"
    assert ".Values.config.kafka.group_id" in (TEMPLATES / "hpa.yaml").read_text()
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment"


def test_chart_config_passes_metasync_check(tmp_path):
    need_bin()
    v = values()
    for name, cfg in (("values.yaml", v["config"]),
                      ("values-tenant-example.yaml",
                       merged(v, load(CHART / "values-tenant-example.yaml"))["config"])):
        cfg = dict(cfg, listen="0.0.0.0:8080")  # what the chart adds on the command line
        r = config_check(cfg, tmp_path)
        assert r.returncode == 0, f"{name}: {r.stderr}"


def test_chart_config_serves_the_probes(make_server, tmp_path):
    """The pod's command with the chart's default metasync.yaml (data_dir and listen moved to the
    test's): it starts and answers the probes and the scrape."""
    need_bin()
    f = tmp_path / "metasync.yaml"
    f.write_text(yaml.safe_dump(values()["config"]))
    s = make_server("--config", str(f))
    for path in ("/healthz", "/readyz", "/metrics"):
        assert s.http.get(s.url + path, timeout=10).status_code == 200, path


def test_secret_variables_name_config_keys(tmp_path):
    """The Secret's METASYNC_* variables (and the ones the docs tell users to put in an existing
    Secret) are accepted by metasync: an unknown METASYNC_* variable stops it at start."""
    need_bin()
    names = set(re.findall(r"^\s*(METASYNC_[A-Z0-9_]+):", (TEMPLATES / "secret.yaml").read_text(),
                           re.M))
    assert {"METASYNC_STORE_URL", "METASYNC_KAFKA_PROPERTIES_SASL_PASSWORD"} <= names
    names |= set(re.findall(r"\b(METASYNC_[A-Z0-9_]+)=",
                            (CHART / "values-tenant-example.yaml").read_text()))
    env = {n: "x" for n in names}
    env["METASYNC_STORE_URL"] = "postgres://u:p@db:5432/metasync_production"
    r = config_check({}, tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert "AWS_ACCESS_KEY_ID" in (TEMPLATES / "secret.yaml").read_text()


def test_helm_lint_and_template():
    helm = shutil.which("helm")
    if not helm:
        pytest.skip("helm is not installed (not a Debian 12 package); see docs/operations.md")
    for extra in ([], ["-f", str(CHART / "values-tenant-example.yaml")]):
        r = subprocess.run([helm, "lint", str(CHART), *extra], capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run([helm, "template", "t", str(CHART), *extra,
                            "--set", "autoscaling.enabled=true,serviceMonitor.enabled=true"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        kinds = {d["kind"] for d in yaml.safe_load_all(r.stdout) if d}
        assert {"Deployment", "HorizontalPodAutoscaler", "ServiceMonitor"} <= kinds


# ---- systemd ------------------------------------------------------------------------------------

def unit_directives():
    d = {}
    for line in UNIT.read_text().splitlines():
        if line and not line.startswith(("#", "[")):
            k, _, v = line.partition("=")
            d.setdefault(k, []).append(v)
    return d


def test_systemd_unit_directives():
    d = unit_directives()
    for key, value in {"User": "metasync", "StateDirectory": "metasync",
                       "Restart": "on-failure", "EnvironmentFile": "-/etc/metasync/env",
                       "NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes"}.items():
        assert d.get(key) == [value], key
    argv = shlex.split(d["ExecStart"][0])
    assert argv[:2] == ["/usr/local/bin/metasync", "serve"]
    assert "--data-dir" in argv and argv[argv.index("--data-dir") + 1] == "/var/lib/metasync"
    assert argv[argv.index("--config") + 1] == "/etc/metasync/metasync.yaml"
    sysusers = (REPO / "deploy" / "systemd" / "metasync.sysusers.conf").read_text()
    assert re.search(r"^u metasync ", sysusers, re.M)


def test_systemd_example_config(tmp_path):
    need_bin()
    r = config_check(load(REPO / "deploy" / "systemd" / "metasync.yaml"), tmp_path)
    assert r.returncode == 0, r.stderr


def systemd_analyze(tmp_path, *args):
    """Runs systemd-analyze on a copy of the unit whose ExecStart names the built binary (verify
    checks that the command exists)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    need_bin()
    unit = tmp_path / "metasync.service"
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/metasync", str(Path(BIN).resolve())))
    return subprocess.run(["systemd-analyze", *args, str(unit)], capture_output=True, text=True,
                          timeout=60)


def test_systemd_analyze_verify(tmp_path):
    r = systemd_analyze(tmp_path, "verify", "--man=no")
    # Unknown or misspelt directives are only warnings: any output is a failure.
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


def test_systemd_analyze_security(tmp_path):
    r = systemd_analyze(tmp_path, "security", "--offline=true", "--no-pager")
    m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
    assert m, r.stdout + r.stderr
    assert float(m.group(1)) <= 2.0, r.stdout


# ---- Containerfile ------------------------------------------------------------------------------

def stages():
    """[(FROM line, [instructions])] of the Containerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append((line, []))
        else:
            out[-1][1].append(line)
    return out


def apt_packages(instructions):
    pkgs = []
    for ins in instructions:
        m = re.search(r"apt-get install ([^&]*)", ins)
        if m:
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def install_deps_packages():
    text = (REPO / "scripts" / "install-deps.sh").read_text()
    body = re.search(r"^PKGS=\((.*?)^\)", text, re.S | re.M).group(1)
    return [w for line in body.splitlines() for w in line.split("#")[0].split()]


def test_containerfile_stages():
    (b_from, b_ins), (r_from, r_ins) = stages()
    assert b_from == "FROM debian:12 AS build"
    assert r_from.startswith("FROM debian:12")
    assert any(re.match(r"RUN cmake .*--build build --target metasync", i) for i in b_ins)
    users = [i.split()[1] for i in r_ins if i.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert users[-1].split(":")[0] == str(values()["podSecurityContext"]["runAsUser"]), \
        "the image's uid differs from the chart's runAsUser"
    assert "EXPOSE 8080" in r_ins
    (hc,) = [i for i in r_ins if i.startswith("HEALTHCHECK")]
    assert "curl" in hc and "/healthz" in hc
    assert 'ENTRYPOINT ["metasync", "serve"]' in r_ins
    (cmd,) = [i for i in r_ins if i.startswith("CMD ")]
    assert "0.0.0.0:8080" in cmd
    assert any(i.startswith("COPY --from=build ") and "/usr/local/bin/metasync" in i for i in r_ins)


def test_containerfile_build_stage_has_install_deps_dev_packages():
    (_, b_ins), (_, r_ins) = stages()
    build = set(apt_packages(b_ins))
    dev = {p for p in install_deps_packages() if p.endswith("-dev")} - TEST_ONLY_DEV
    assert dev <= build, f"-dev packages of install-deps.sh missing in the build stage: {dev - build}"
    assert {"cmake", "pkg-config", "build-essential"} <= build
    assert not [p for p in apt_packages(r_ins) if p.endswith("-dev")], "-dev package at runtime"


def test_containerfile_runtime_packages_exist():
    if not shutil.which("apt-cache"):
        pytest.skip("apt-cache is not available")
    (_, _), (_, r_ins) = stages()
    pkgs = apt_packages(r_ins)
    assert pkgs
    r = subprocess.run(["apt-cache", "show", "--no-all-versions", *pkgs], capture_output=True,
                       text=True, timeout=60)
    found = set(re.findall(r"^Package: (\S+)", r.stdout, re.M))
    assert found == set(pkgs), f"not Debian packages here: {set(pkgs) - found} ({r.stderr})"


def owning_packages(paths):
    """{library path: Debian package} for each path dpkg knows (tried as given, resolved, and
    with and without /usr, since Debian 12 merges /lib into /usr/lib)."""
    tries = {}
    for p in paths:
        real = os.path.realpath(p)
        for cand in (p, real):
            tries[cand] = p
            tries[cand[4:] if cand.startswith("/usr/") else "/usr" + cand] = p
    r = subprocess.run(["dpkg", "-S", *tries], capture_output=True, text=True, timeout=60)
    owners = {}
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        if path in tries:
            owners[tries[path]] = pkg.split(":")[0].split(", ")[0]
    return owners


def test_runtime_packages_provide_the_binarys_libraries():
    """Every library build/metasync loads comes from a runtime-stage package or from what those
    packages depend on; every library it links directly is listed by name."""
    need_bin()
    for tool in ("ldd", "dpkg", "apt-cache", "objdump"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} is not available")
    (_, _), (_, r_ins) = stages()
    listed = set(apt_packages(r_ins))
    ldd = subprocess.run(["ldd", BIN], capture_output=True, text=True, timeout=30).stdout
    libs = dict(re.findall(r"^\s*(\S+) => (/\S+)", ldd, re.M))
    assert libs, ldd
    owners = owning_packages(libs.values())
    assert set(owners) == set(libs.values()), \
        f"no package owns {set(libs.values()) - set(owners)}"
    base = {"libc6"}  # in every Debian image
    needed = re.findall(r"NEEDED\s+(\S+)",
                        subprocess.run(["objdump", "-p", BIN], capture_output=True,
                                       text=True).stdout)
    direct = {owners[libs[n]] for n in needed if n in libs}
    assert direct - base <= listed, f"linked directly but not listed: {direct - base - listed}"
    deps = subprocess.run(["apt-cache", "depends", "--recurse", "--no-recommends",
                           "--no-suggests", "--no-conflicts", "--no-breaks", "--no-replaces",
                           "--no-enhances", *listed], capture_output=True, text=True,
                          timeout=120).stdout
    closure = set(re.findall(r"^([a-z0-9][a-z0-9+.-]+)$", deps, re.M))
    loaded = set(owners.values())
    assert loaded - base <= closure, f"not pulled in by the runtime packages: {loaded - closure}"
