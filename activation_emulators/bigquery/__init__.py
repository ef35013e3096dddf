"""A local BigQuery (REST API v2) that runs GoogleSQL on DuckDB, translated by sqlglot.

(The full docstring is written once the behaviour is verified.)
"""

from activation_emulators.bigquery.server import BigQueryEmulator, LoggedRequest

__all__ = ["BigQueryEmulator", "LoggedRequest"]
