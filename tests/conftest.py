"""Root conftest: registers the shared fixture modules for the broker and the database."""

pytest_plugins = ("tests.fixtures.kafka", "tests.fixtures.tdengine")
