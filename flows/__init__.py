"""Prefect flows and the ``finews`` command line."""
