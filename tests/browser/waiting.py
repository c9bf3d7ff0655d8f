"""Waiting for a condition in the page without tripping the page's own Content Security Policy.

Playwright's `wait_for_function` checks once from outside the page, then keeps polling from a script *inside* it that
evaluates the expression as a string: our CSP (no 'unsafe-eval') refuses that, so the wait fails whenever the
condition is not already true at the first check. `page.evaluate` runs through the DevTools protocol, which the
page's CSP does not govern, so polling it from here waits for the same condition honestly.
"""

import time


def wait_for_js(page, expression: str, *, timeout_ms: int = 10_000, interval_ms: int = 100) -> None:
    """Poll a JavaScript expression (or arrow function) until it is truthy; AssertionError after `timeout_ms`."""
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        if page.evaluate(expression):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_ms} ms: {expression}")
        page.wait_for_timeout(interval_ms)
