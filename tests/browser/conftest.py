"""Browser tests: Playwright (sync API) driving Debian's Chromium against pytest-django's live server.

One browser per test session, a fresh context (cookies, storage) per test. Every request that would leave
127.0.0.1 is aborted and recorded: the platform must work on an air-gapped hospital network.
"""

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# Playwright's sync API runs an event loop in this thread; Django refuses ORM calls there unless told it is fine.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",  # we run as root in CI
    "--disable-gpu",
    "--disable-dev-shm-usage",
    # Without these Chromium phones home at start; the closed network refuses it, noisily and slowly.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
HERE = Path(__file__).resolve().parent

# Collected in the page before any of its own scripts run; CDP-injected, so the page's CSP does not block it.
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} blocked ${event.blockedURI}`);
});
"""


@dataclass
class PageProblems:
    """What went wrong in the page while a test drove it; the smoke test asserts it all stays empty."""

    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)

    def csp_violations(self, page) -> list[str]:
        try:
            return list(page.evaluate("window.__cspViolations || []"))
        except Exception:  # noqa: BLE001 - a page mid-navigation has no window to ask
            return []


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run browser tests")
    from django.urls import get_resolver
    from playwright.sync_api import sync_playwright

    # The URLconf imports torch, torchvision and the training code (10 s and more on a busy machine); load it once
    # here so the first page of the session is not the one that pays for it against the 10 s page timeout.
    get_resolver().url_patterns  # noqa: B018

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_problems():
    return PageProblems()


@pytest.fixture
def page(browser, live_server, page_problems):
    """A page in a fresh browser context whose relative URLs go to the live server (`page.goto("/login")`)."""
    context = browser.new_context(base_url=live_server.url, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(10_000)
    context.add_init_script(CSP_LISTENER)

    def keep_it_local(route):
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:", "about:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            page_problems.external_requests.append(route.request.url)
            route.abort()

    context.route("**/*", keep_it_local)
    page = context.new_page()
    page.on("console", lambda msg: msg.type == "error" and page_problems.console_errors.append(msg.text))
    page.on("pageerror", lambda error: page_problems.page_errors.append(str(error)))
    page.on(
        "requestfailed",
        lambda request: page_problems.failed_requests.append(f"{request.url} {request.failure}"),
    )
    yield page
    context.close()
