"""Where a stage's parallel work runs: Prefect's thread pool in the flow's process, or Dask workers
(a ``LocalCluster`` of worker processes started for the stage, or a running scheduler's workers)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lowlm.config.base import _Strict

ADDRESS = re.compile(r"^(tcp|tls)://[^\s:/]+:\d{1,5}$")


class Runner(_Strict):
    """The task-runner settings of a stage whose work is mapped in parts (shards, grid cells)."""

    runner: Literal["thread", "dask"] = Field(
        "thread", description="thread: Prefect's ThreadPoolTaskRunner in the flow's process; dask: prefect-dask's "
                              "DaskTaskRunner (a LocalCluster of `workers` processes on 127.0.0.1 started for the "
                              "stage, or the workers of the scheduler at `address`).")
    workers: int = Field(2, ge=1, description="Parts run at once: threads, or local Dask worker processes (one "
                                              "thread each).")
    address: str | None = Field(None, description="dask: a running Dask scheduler (tcp://host:8786) to use instead "
                                                  "of a local cluster; checked when the flow starts.")

    def placeless(self):
        """This config with the runner settings at their defaults: what the work is, not where it runs (the part
        of a config that keys a cache, so that a thread run and a Dask run of the same work share results)."""
        return self.model_copy(update={name: field.get_default() for name, field in Runner.model_fields.items()})

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None and not ADDRESS.match(value):
            raise ValueError(f"address {value!r}: expected a Dask scheduler address like tcp://127.0.0.1:8786")
        return value

    @model_validator(mode="after")
    def _address_needs_dask(self) -> "Runner":
        if self.address is not None and self.runner != "dask":
            raise ValueError(f"address is set ({self.address}) but runner is {self.runner!r}: set runner: dask")
        return self
