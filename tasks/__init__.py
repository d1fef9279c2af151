"""Pipeline stages as Prefect tasks. Each is thin: call lowlm, log to MLflow, return a small handle."""
