pytest_plugins = [
    "tests.fixtures.toxiproxy",
    "tests.fixtures.kube",
    "tests.fixtures.prometheus",
    "tests.fixtures.answers",
    "tests.fixtures.servers",
    "tests.fixtures.alerting",
    "tests.fixtures.postgres",
]
