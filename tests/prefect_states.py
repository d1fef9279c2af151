"""Reading a finished flow run's task states back from the Prefect server, as the UI shows them.

Prefect 3 task runs report their states as events: this process's events worker sends them over a websocket
after the task returns, and the server's task-run recorder writes them in batches. A flow's last task (summarize)
can therefore be missing, or a row can still have no state, for a while after the flow returned. Every test
that reads states goes through `task_states`, which first sends what this process still holds and then reads
until every task it was told to expect is recorded in a final state.
"""

from __future__ import annotations

import time

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.events.worker import EventsWorker

UNFINISHED = {"Pending", "Running", "Scheduled", None}


def task_states(flow_run_id, expect: set[str], timeout: float = 180.0) -> dict[str, str]:
    """Task name (without Prefect's numeric suffix) -> final state name for the flow run.

    ``expect`` names the tasks the caller will look at; an empty set asks what ran at all (for flows that
    fail before any task). Past ``timeout`` it answers what it has, so the caller's assertion shows it."""
    EventsWorker.drain_all(timeout=60, at_exit=False)  # the worker starts again on the next event
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        states = {r.name.rsplit("-", 1)[0]: (r.state.name if r.state else None) for r in runs}
        if (expect <= set(states) and not UNFINISHED & set(states.values())) or time.monotonic() > deadline:
            return states
        time.sleep(0.5)
