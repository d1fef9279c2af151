"""Prefect flows: the DAGs, one per kind of job.

Importing the package sets the environment every entry point needs before torch, Prefect, MLflow
or datasets load (``flows.runtime.prepare_environment``: offline settings, ``OMP_WAIT_POLICY=PASSIVE``),
so ``python -m flows.X``, ``lowlm`` and deployment runs all start the same way.
"""

from flows.runtime import prepare_environment

prepare_environment()
