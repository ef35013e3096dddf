"""activation: reverse-ETL and audience activation from your warehouse."""

__version__ = "0.1.0"
