"""Fixture plugins shared by every test folder: databases, Redis, the sample photos."""

pytest_plugins = ["tests.db", "tests.local_photos"]
