"""Prefect flows: the DAGs, one per kind of job."""
