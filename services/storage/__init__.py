"""Storage: the async database (SQLite by default, PostgreSQL to scale out), its schema
and migrations, and the database-backed user preferences."""

from services.storage.db import Database, open_database
from services.storage.prefs import DbPreferences

__all__ = ["Database", "DbPreferences", "open_database"]
