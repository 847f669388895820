from tests.browser import browser, trap  # noqa: F401  (fixtures of the browser tests)
