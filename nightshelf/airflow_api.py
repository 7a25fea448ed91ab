"""A client of Airflow 3's REST API (`/api/v2`), standard library only: trigger a night on a
running Airflow (the docker stack, a production deployment) and follow it task by task.

Authentication: a token from `$AIRFLOW_API_TOKEN`, else one from `/auth/token` with
`$AIRFLOW_API_USERNAME`/`$AIRFLOW_API_PASSWORD` (POST), else a token without credentials
(GET, which Airflow's simple auth manager gives when all users are admins).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from typing import Callable


class AirflowAPIError(RuntimeError):
    pass


class AirflowAPI:
    def __init__(self, url: str, environ=None):
        self.url = url.rstrip("/")
        self._environ = os.environ if environ is None else environ
        self._token = self._environ.get("AIRFLOW_API_TOKEN") or None

    def _get_token(self) -> str:
        user = self._environ.get("AIRFLOW_API_USERNAME")
        if user:
            body = json.dumps({"username": user,
                               "password": self._environ.get("AIRFLOW_API_PASSWORD", "")})
            req = urllib.request.Request(f"{self.url}/auth/token", data=body.encode(),
                                         method="POST",
                                         headers={"Content-Type": "application/json"})
        else:
            req = urllib.request.Request(f"{self.url}/auth/token")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.loads(r.read())["access_token"]
        except urllib.error.HTTPError as exc:
            raise AirflowAPIError(f"no API token from {self.url}/auth/token ({exc.code}): set "
                                  f"AIRFLOW_API_TOKEN or AIRFLOW_API_USERNAME/PASSWORD") from exc

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        if self._token is None:
            self._token = self._get_token()
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self._token}",
                     "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as exc:
            raise AirflowAPIError(f"{method} {path}: {exc.code} {exc.read()[:2000]!r}") from exc

    def wait_for_dag(self, dag_id: str, seconds: float = 300) -> dict:
        """The DAG once the dag-processor has parsed it."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return self.api("GET", f"/dags/{dag_id}")
            except (AirflowAPIError, OSError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(2)

    def trigger(self, dag_id: str, ds: str, run_id: str, conf: dict | None = None) -> dict:
        """A run of `dag_id` for the logical date `ds`, the DAG unpaused first."""
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
        return self.api("POST", f"/dags/{dag_id}/dagRuns",
                        {"dag_run_id": run_id, "logical_date": f"{ds}T00:00:00Z",
                         "conf": conf or {}})

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        out = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")
        return {t["task_id"]: t["state"] for t in out["task_instances"]}

    def wait_for_run(self, dag_id: str, run_id: str, seconds: float,
                     progress: Callable[[str], None] = print, poll: float = 5) -> dict:
        """Waits for the run to end, reporting the run's and each task's changes of state."""
        deadline, state, tasks = time.monotonic() + seconds, None, {}
        while time.monotonic() < deadline:
            run = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            now = self.task_states(dag_id, run_id)
            for task, task_state in now.items():
                if task_state and task_state != tasks.get(task):
                    progress(f"{run_id}: {task} {task_state}")
            tasks = now
            if run["state"] != state:
                state = run["state"]
                progress(f"{run_id}: run {state}")
            if state in ("success", "failed"):
                return run
            time.sleep(poll)
        raise TimeoutError(f"{run_id} still {state} after {seconds}s")
