"""docker/ is checked without a Docker engine or a cluster.

- docker/compose.yml parses with `docker-compose config` (Debian's docker-compose 1.29, a Compose Specification
  client; CI installs it, so there a missing client is a failure, not a skip);
- every Kubernetes manifest under docker/k8s/ validates against the Kubernetes JSON schemas that
  kubernetes-validate ships (offline, strict: an unknown field is an error);
- the properties the production path relies on: health checks everywhere, one beat, a GPU for the imaging
  worker, placeholder secrets only, non-root images without compilers, a dashboard whose panels all query.
"""

import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
K8S = DOCKER / "k8s"
COMPOSE_FILE = DOCKER / "compose.yml"
GPU_OVERRIDE = DOCKER / "compose.gpu.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
K8S_VERSION = "1.37.0"
EXPECTED_SERVICES = {"mysql", "postgres", "redis", "migrate", "web", "worker", "worker-imaging", "beat", "nginx"}
PLACEHOLDER = "change-me"


# --- docker compose ------------------------------------------------------------------------------------------------
def compose_client() -> str:
    client = shutil.which("docker-compose")
    if client is None:
        if os.environ.get("CI"):
            pytest.fail("docker-compose is missing: CI must install the Debian package docker-compose")
        pytest.skip("docker-compose is not installed (apt-get install docker-compose); CI runs this check")
    return client


def compose(*args: str, files=(COMPOSE_FILE,), env_file=ENV_EXAMPLE) -> subprocess.CompletedProcess:
    command = [compose_client()]
    for file in files:
        command += ["-f", str(file)]
    command += ["--env-file", str(env_file), *args]
    # The app services' env_file is DEEPMED_ENV_FILE (default docker/.env, which only an operator creates).
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "DEEPMED_ENV_FILE": str(env_file.resolve())}
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_compose_file_parses_with_the_example_env_file():
    result = compose("config", "-q")

    assert result.returncode == 0, result.stderr


def test_compose_lists_every_service():
    result = compose("config", "--services")

    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) == EXPECTED_SERVICES


def test_gpu_override_parses_and_reserves_an_nvidia_gpu_for_the_imaging_worker():
    result = compose("config", files=(COMPOSE_FILE, GPU_OVERRIDE))

    assert result.returncode == 0, result.stderr
    merged = yaml.safe_load(result.stdout)["services"]["worker-imaging"]
    devices = merged["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert merged["build"]["dockerfile"] == "docker/Dockerfile.cuda"
    assert merged["environment"]["CELERY_QUEUES"] == "imaging"


def test_compose_config_rejects_a_service_depending_on_one_that_does_not_exist(tmp_path):
    """The check above can fail: the same client refuses a broken file."""
    broken = tmp_path / "compose.yml"
    broken.write_text("services:\n  web:\n    image: nginx:1.27-alpine\n    depends_on: [database]\n")
    empty_env = tmp_path / ".env.example"
    empty_env.write_text("")

    result = compose("config", "-q", files=(broken,), env_file=empty_env)

    assert result.returncode != 0
    assert "database" in result.stderr


def test_compose_refuses_to_start_without_the_secrets_it_interpolates(tmp_path):
    """An env file without the database passwords stops compose with the variable's name, not a blank password."""
    partial = tmp_path / ".env.example"
    partial.write_text(
        "\n".join(
            line
            for line in ENV_EXAMPLE.read_text().splitlines()
            if not line.startswith(("MYSQL_ROOT_PASSWORD=", "MYSQL_PASSWORD="))
        )
    )

    result = compose("config", "-q", env_file=partial)

    assert result.returncode != 0
    assert "MYSQL_ROOT_PASSWORD" in result.stderr or "MYSQL_PASSWORD" in result.stderr


def compose_services() -> dict:
    """The services as written (YAML anchors and merge keys resolved), without needing the compose client."""
    return yaml.safe_load(COMPOSE_FILE.read_text())["services"]


def test_every_compose_service_has_a_health_check():
    services = compose_services()

    assert set(services) == EXPECTED_SERVICES
    missing = [name for name, service in services.items() if not service.get("healthcheck", {}).get("test")]
    assert missing == []
    disabled = [name for name, service in services.items() if service["healthcheck"].get("disable")]
    assert disabled == []


def test_compose_services_start_only_after_what_they_need_is_healthy():
    services = compose_services()

    for name in ("web", "worker", "worker-imaging", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
        for infrastructure in ("mysql", "postgres", "redis"):
            assert depends[infrastructure]["condition"] == "service_healthy", (name, infrastructure)
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"
    # Only nginx is reachable from outside the host.
    assert [name for name, service in services.items() if service.get("ports")] == ["nginx"]


def test_compose_workers_listen_on_the_queues_of_the_design():
    services = compose_services()

    assert services["worker"]["environment"]["CELERY_QUEUES"] == "default,tabular,chatbot"
    assert services["worker-imaging"]["environment"]["CELERY_QUEUES"] == "imaging"
    assert services["beat"]["build"]["target"] == "beat"
    assert "deploy" not in services["beat"] or services["beat"]["deploy"].get("replicas", 1) == 1


def test_nginx_renders_the_shared_template_with_every_placeholder_defined():
    """The image's envsubst leaves an undefined ${NAME} in place, which nginx would then refuse: define them all."""
    nginx = compose_services()["nginx"]
    template = DOCKER / "nginx" / "templates" / "deepmed.conf.template"
    if not template.exists():
        pytest.skip("docker/nginx/templates/deepmed.conf.template is not there yet")
    placeholders = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", template.read_text()))

    assert "./nginx/templates:/etc/nginx/templates:ro" in nginx["volumes"]
    assert placeholders
    assert sorted(placeholders - set(nginx["environment"])) == []


# --- Kubernetes ----------------------------------------------------------------------------------------------------
def k8s_documents() -> list[tuple[str, dict]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path.name, document))
    return documents


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in k8s_documents() if doc["kind"] == kind}


def test_kubernetes_validate_ships_the_version_we_check_against():
    assert K8S_VERSION in kubernetes_validate.utils.all_versions()
    # The schema used is exactly that version's, not an older fallback.
    assert kubernetes_validate.validate(by_kind("Namespace")["deepmed"], K8S_VERSION, strict=True) == "1.37"


def test_every_kubernetes_manifest_validates_strictly():
    documents = k8s_documents()
    failures = []
    for file_name, document in documents:
        try:
            kubernetes_validate.validate(document, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{file_name} {document['kind']}/{document['metadata']['name']}: {exc}")

    assert failures == []
    assert len(documents) >= 15


BROKEN_DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replica: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: deepmed/web:1.0.0
          resources: {limits: {cpu: 2}}
          ports: [{containerPort: "http"}]
"""


def test_a_broken_manifest_is_rejected():
    """`replica` (a typo) is unknown in strict mode and a port must be a number: the validator can fail."""
    document = yaml.safe_load(BROKEN_DEPLOYMENT)

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    document["spec"]["replicas"] = document["spec"].pop("replica")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
    document["spec"]["template"]["spec"]["containers"][0]["ports"] = [{"containerPort": 8000}]
    kubernetes_validate.validate(document, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}

    assert set(kustomization["resources"]) == files
    assert kustomization["namespace"] == "deepmed"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed (optional check)")
def test_kustomize_renders_the_whole_set():
    result = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert len(rendered) == len(k8s_documents())
    assert {doc["metadata"].get("namespace") for doc in rendered if doc["kind"] != "Namespace"} == {"deepmed"}


def test_deployments_cover_web_every_queue_and_beat():
    deployments = by_kind("Deployment")

    assert set(deployments) == {
        "web",
        "worker-default",
        "worker-tabular",
        "worker-chatbot",
        "worker-imaging",
        "beat",
    }
    queues = {}
    for name, deployment in deployments.items():
        env = {
            item["name"]: item.get("value")
            for item in deployment["spec"]["template"]["spec"]["containers"][0].get("env", [])
        }
        if "CELERY_QUEUES" in env:
            queues[name] = env["CELERY_QUEUES"]
    assert queues == {
        "worker-default": "default",
        "worker-tabular": "tabular",
        "worker-chatbot": "chatbot",
        "worker-imaging": "imaging",
    }


def test_beat_is_a_single_replica_replaced_not_rolled_and_never_autoscaled():
    beat = by_kind("Deployment")["beat"]

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    targets = {hpa["spec"]["scaleTargetRef"]["name"] for hpa in by_kind("HorizontalPodAutoscaler").values()}
    assert "beat" not in targets
    assert {"web", "worker-default", "worker-tabular", "worker-chatbot", "worker-imaging"} <= targets


def test_imaging_worker_requests_a_gpu_on_gpu_nodes():
    spec = by_kind("Deployment")["worker-imaging"]["spec"]["template"]["spec"]
    resources = spec["containers"][0]["resources"]

    assert resources["limits"]["nvidia.com/gpu"] == 1
    assert spec["nodeSelector"]
    assert any(toleration["key"] == "nvidia.com/gpu" for toleration in spec["tolerations"])
    # Other workers never hold a GPU.
    for name, deployment in by_kind("Deployment").items():
        if name != "worker-imaging":
            limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
            assert "nvidia.com/gpu" not in limits, name


def test_every_pod_runs_as_non_root_with_requests_and_limits():
    pods = {name: doc["spec"]["template"]["spec"] for name, doc in by_kind("Deployment").items()}
    pods.update({name: doc["spec"]["template"]["spec"] for name, doc in by_kind("Job").items()})

    assert "deepmed-migrate" in pods
    for name, pod in pods.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] == 10001, name
        for container in pod["containers"]:
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert container["resources"]["requests"] and container["resources"]["limits"], name


def test_web_probes_liveness_on_healthz_and_readiness_on_readyz_with_an_allowed_host():
    container = by_kind("Deployment")["web"]["spec"]["template"]["spec"]["containers"][0]
    allowed_hosts = by_kind("ConfigMap")["deepmed-config"]["data"]["ALLOWED_HOSTS"].split(",")

    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        headers = {h["name"]: h["value"] for h in container[probe]["httpGet"]["httpHeaders"]}
        assert headers["Host"] in allowed_hosts, probe


def test_migrations_run_as_a_job_for_both_databases():
    job = by_kind("Job")["deepmed-migrate"]
    command = " ".join(job["spec"]["template"]["spec"]["containers"][0]["command"])

    assert "manage.py migrate --noinput" in command
    assert "--database vectors" in command
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_ingress_terminates_tls_and_closes_metrics():
    ingresses = by_kind("Ingress")
    main = ingresses["deepmed"]

    assert main["spec"]["tls"][0]["secretName"] == "deepmed-tls"
    assert main["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"].endswith("m")
    closed = [
        ingress
        for ingress in ingresses.values()
        if any(p["path"] == "/metrics" for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"])
    ]
    assert closed
    assert closed[0]["metadata"]["annotations"]["nginx.ingress.kubernetes.io/whitelist-source-range"] == "127.0.0.1/32"


def test_media_volume_is_shared_by_web_and_every_worker():
    claim = by_kind("PersistentVolumeClaim")["deepmed-media"]

    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for name, deployment in by_kind("Deployment").items():
        if name == "beat":
            continue
        claims = [
            volume["persistentVolumeClaim"]["claimName"]
            for volume in deployment["spec"]["template"]["spec"]["volumes"]
            if "persistentVolumeClaim" in volume
        ]
        assert claims == ["deepmed-media"], name


# --- secrets in the repository are placeholders --------------------------------------------------------------------
def test_no_secret_in_the_repository_holds_a_real_value():
    secrets = by_kind("Secret")

    assert secrets
    for name, secret in secrets.items():
        values = {**secret.get("stringData", {}), **secret.get("data", {})}
        assert values, name
        real = {key: value for key, value in values.items() if PLACEHOLDER not in str(value)}
        assert real == {}, name


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def test_env_example_holds_placeholders_for_every_secret():
    values = env_example()
    secret_like = {name: value for name, value in values.items() if re.search(r"PASSWORD|SECRET|KEY|SALT", name)}

    assert {"SECRET_KEY", "MYSQL_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD"} <= set(secret_like)
    assert {name: value for name, value in secret_like.items() if value != PLACEHOLDER} == {}
    for url_name in ("DATABASE_URL", "VECTOR_DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
        assert f":{PLACEHOLDER}@" in values[url_name], url_name


def test_env_example_names_the_production_settings():
    values = env_example()
    documented = set(values) | set(re.findall(r"^# ?([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))

    for name in (
        "SECRET_KEY",
        "DATABASE_URL",
        "VECTOR_DATABASE_URL",
        "CELERY_BROKER_URL",
        "CACHE_URL",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "USE_X_FORWARDED_PROTO",
        "METRICS_ALLOWED_IPS",
        "AWS_STORAGE_BUCKET_NAME",
    ):
        assert name in documented, name
    assert values["DEBUG"] == "0"
    assert values["LOG_FORMAT"] == "json"
    assert values["USE_X_FORWARDED_PROTO"] == "1"


def test_the_real_env_file_and_certificates_are_ignored_by_git():
    result = subprocess.run(
        ["git", "check-ignore", "docker/.env", "docker/certs/tls.key"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.stdout.split() == ["docker/.env", "docker/certs/tls.key"]
    assert (
        "docker/.env.example"
        not in subprocess.run(
            ["git", "check-ignore", "docker/.env.example"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout
    )


# --- Dockerfiles ---------------------------------------------------------------------------------------------------
def dockerfile_stages(path: Path) -> dict[str, dict]:
    """Stages by name: their base (another stage or an image) and their instructions (continuations joined)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: dict[str, dict] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            match = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.IGNORECASE)
            current = match.group(2) or f"stage{len(stages)}"
            stages[current] = {"base": match.group(1), "instructions": []}
        elif current:
            stages[current]["instructions"].append((instruction.upper(), rest))
    return stages


def stage_chain(stages: dict, name: str) -> list[dict]:
    chain = []
    while name in stages:
        chain.append(stages[name])
        name = stages[name]["base"]
    return chain


COMPILERS = re.compile(r"\b(build-essential|gcc|g\+\+|clang|make|-dev)\b")


@pytest.mark.parametrize(
    ("dockerfile", "targets"),
    [("Dockerfile", ["web", "worker", "beat"]), ("Dockerfile.cuda", ["worker-cuda"])],
)
def test_final_stages_run_as_a_non_root_user_without_compilers(dockerfile, targets):
    stages = dockerfile_stages(DOCKER / dockerfile)

    assert "build-essential" in " ".join(rest for _, rest in stages["builder"]["instructions"])
    for target in targets:
        chain = stage_chain(stages, target)
        instructions = [item for stage in reversed(chain) for item in stage["instructions"]]
        users = [rest.strip() for instruction, rest in instructions if instruction == "USER"]
        assert users, target
        assert users[-1].split(":")[0] not in {"root", "0"}, target
        installs = [rest for instruction, rest in instructions if instruction == "RUN" and "install" in rest]
        assert installs, target
        for command in installs:
            packages = " ".join(re.findall(r"apt-get install[^&]*", command))
            assert not COMPILERS.search(packages), (target, packages)
        assert any(instruction == "HEALTHCHECK" for instruction, _ in instructions), target
        assert any(instruction == "CMD" for instruction, _ in instructions), target


def test_web_image_runs_gunicorn_with_the_shared_config_and_collects_static_at_build_time():
    stages = dockerfile_stages(DOCKER / "Dockerfile")
    instructions = [item for stage in reversed(stage_chain(stages, "web")) for item in stage["instructions"]]
    command = json.loads(next(rest for instruction, rest in reversed(instructions) if instruction == "CMD"))

    assert "gunicorn -c docker/gunicorn.conf.py deepmed.wsgi:application" in " ".join(command)
    assert any("collectstatic" in rest for instruction, rest in instructions if instruction == "RUN")
    assert stages["runtime"]["base"] == "${PYTHON_IMAGE}"
    assert "python:3.11-slim-bookworm" in (DOCKER / "Dockerfile").read_text()


def test_dockerignore_keeps_local_data_and_secrets_out_of_the_build_context():
    ignored = set((ROOT / ".dockerignore").read_text().split())

    assert {".venv", "var", "media", ".git", "node_modules", "*.sqlite3", "docker/.env"} <= ignored


# --- container health checks ---------------------------------------------------------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the standard library's name
        # Like Django: only the allowed host gets an answer, anything else 400.
        status = 200 if self.headers["Host"] == "deepmed.example.org" else 400
        self.send_response(500 if self.path == "/broken" else status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def healthcheck(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env}
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py"), *args],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_http_health_check_asks_for_the_first_allowed_host(local_server):
    healthy = healthcheck("http", f"{local_server}/healthz", ALLOWED_HOSTS="deepmed.example.org,other.example.org")
    wrong_host = healthcheck("http", f"{local_server}/healthz", ALLOWED_HOSTS="other.example.org")
    broken = healthcheck("http", f"{local_server}/broken", ALLOWED_HOSTS="deepmed.example.org")

    assert (healthy.returncode, healthy.stdout.split(":")[0]) == (0, "healthy")
    assert wrong_host.returncode == 1
    assert broken.returncode == 1 and broken.stdout.startswith("unhealthy")


def fake_proc(root: Path, *commands: str) -> Path:
    for pid, command in enumerate(commands, start=1):
        (root / str(pid)).mkdir(parents=True)
        (root / str(pid) / "cmdline").write_bytes(command.replace(" ", "\0").encode())
    return root


def test_beat_health_check_fails_where_no_beat_runs(tmp_path):
    proc = fake_proc(tmp_path, "/usr/bin/python celery --app deepmed worker --queues default", "nginx: master")
    result = healthcheck("beat", HEALTHCHECK_PROC_DIR=str(proc))

    assert result.returncode == 1
    assert "no celery beat process" in result.stdout


def test_beat_health_check_goes_on_to_the_database_where_beat_runs(tmp_path):
    proc = fake_proc(tmp_path, "/usr/bin/python celery --app deepmed --quiet beat --loglevel INFO")
    result = healthcheck("beat", HEALTHCHECK_PROC_DIR=str(proc))

    # Past the process check: this environment has no settings, so the database step is the one that fails.
    assert result.returncode == 1
    assert "no celery beat process" not in result.stdout
    assert "SECRET_KEY" in result.stdout


# --- Grafana -------------------------------------------------------------------------------------------------------
def test_grafana_dashboard_queries_our_metrics_in_every_panel():
    dashboard = json.loads((DOCKER / "grafana" / "deepmed-dashboard.json").read_text())
    panels = dashboard["panels"]
    expressions = [target.get("expr", "") for panel in panels for target in panel.get("targets", [])]

    assert len(panels) >= 8
    assert all(panel.get("targets") and all(t.get("expr", "").strip() for t in panel["targets"]) for panel in panels)
    joined = "\n".join(expressions)
    for metric in (
        "django_http_requests_latency_seconds_by_view_method",
        "django_http_responses_total_by_status_view_method",
        "deepmed_celery_task_duration_seconds",
        "deepmed_celery_task_failures_total",
        "deepmed_queue_length",
        "deepmed_training_runs",
        "deepmed_chat_response_seconds",
    ):
        assert metric in joined, metric
    assert "histogram_quantile(0.95" in joined and "histogram_quantile(0.5" in joined
    assert 'status=~"5.."' in joined
    # Balanced brackets in every query: a cheap guard against a truncated edit.
    for expr in expressions:
        assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
