"""The welcome page in a real Chromium: it renders, with no script errors, no CSP violations, nothing fetched
from outside 127.0.0.1."""


def test_welcome_page_loads_cleanly_and_stays_on_localhost(page, page_problems):
    response = page.goto("/", wait_until="networkidle")

    assert response is not None and response.status == 200
    assert "DeepMed" in page.title()
    assert page.locator("main").first.is_visible()
    assert page_problems.external_requests == []
    assert page_problems.console_errors == []
    assert page_problems.page_errors == []
    assert page_problems.csp_violations(page) == []
    assert page_problems.failed_requests == []


def test_every_stylesheet_and_script_on_the_welcome_page_is_served_locally(page, page_problems, live_server):
    loaded = []
    page.on("response", lambda response: loaded.append((response.url, response.status)))

    page.goto("/", wait_until="networkidle")

    assets = [(url, status) for url, status in loaded if url.endswith((".css", ".js"))]
    assert assets, "the welcome page should load its own CSS/JS"
    assert all(url.startswith(live_server.url) for url, _ in assets)
    assert all(status == 200 for _, status in assets), assets


def test_unknown_page_shows_the_friendly_404_in_the_browser(page, page_problems):
    response = page.goto("/no-such-page-here")

    assert response is not None and response.status == 404
    assert page.locator("main").first.is_visible()
    assert page_problems.external_requests == []
    assert page_problems.csp_violations(page) == []
