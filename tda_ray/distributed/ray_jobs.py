"""Batches as Ray Jobs: ``tda-ray batch`` run on a cluster through ``JobSubmissionClient``.

Input and output paths are then read and written by the cluster (shared storage or ``s3://``).
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from ray.job_submission import JobStatus, JobSubmissionClient

from tda_ray.distributed.batch import parse_batch_call

__all__ = ["SubmittedBatch", "batch_entrypoint", "submit_batch"]

# A head that has just started answers "No available agent to submit job, please try again later" until its
# job agent registers; that is retried for this long.
SUBMIT_RETRY_S = 60.0


@dataclass(frozen=True)
class SubmittedBatch:
    job_id: str
    status: str  # JobStatus value: SUCCEEDED, FAILED, STOPPED (or PENDING/RUNNING when not followed)
    address: str

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def batch_entrypoint(input: str, output: str, *, python: str = "python", **kwargs: Any) -> str:
    """The shell command a Ray Job runs on the cluster for this batch (keywords as for ``run_batch``)."""
    params, options = parse_batch_call(kwargs)
    cmd = [python, "-m", "tda_ray.cli", "batch", input, "--output", output]
    # Only what differs from the defaults, each as the CLI argument of the same name.
    for model in (params, options):
        for name, value in model.model_dump(exclude_defaults=True).items():
            cmd += [_flag(name), repr(value) if isinstance(value, float) else str(value)]
    cmd += ["--address", "auto"]  # the job driver joins the cluster it was submitted to
    return shlex.join(cmd)


def _submit_with_retry(client: JobSubmissionClient, entrypoint: str, runtime_env: dict[str, Any]) -> str:
    deadline = time.monotonic() + SUBMIT_RETRY_S
    while True:
        try:
            job_id: str = client.submit_job(
                entrypoint=entrypoint, runtime_env=runtime_env, metadata={"tda_ray": "batch"}
            )
            return job_id
        except RuntimeError as exc:
            if "try again later" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _follow(client: JobSubmissionClient, job_id: str, log: TextIO, timeout_s: float | None) -> JobStatus:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            log.write(lines)
            log.flush()

    try:
        asyncio.run(asyncio.wait_for(tail(), timeout=timeout_s))
    except asyncio.TimeoutError:
        pass
    except KeyboardInterrupt:
        client.stop_job(job_id)
        raise
    # The log stream ends when the job does; poll briefly for the terminal status it reports.
    terminal = {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}
    status = client.get_job_status(job_id)
    while status not in terminal and (deadline is None or time.monotonic() < deadline):
        time.sleep(0.5)
        status = client.get_job_status(job_id)
    if status not in terminal:
        raise TimeoutError(f"Ray job {job_id} still {status.value} after {timeout_s} s")
    return status


def submit_batch(
    address: str,
    input: str,
    output: str,
    *,
    runtime_env: dict[str, Any] | None = None,
    python: str = "python",
    follow: bool = True,
    log: TextIO | None = None,
    timeout_s: float | None = None,
    **kwargs: Any,
) -> SubmittedBatch:
    """Run the batch as a Ray Job on the cluster whose dashboard is at ``address`` (``http://HEAD:8265``).

    Keywords as for ``run_batch`` (Rips parameters, ``memory_limit``, ``batch_size``); ``input``/``output``
    are paths or URIs as the cluster sees them.  ``runtime_env`` is passed to the job (e.g. ``{"pip": [...]}``;
    ``RAY_USAGE_STATS_ENABLED=0`` is added).  With ``follow`` the job's logs are streamed to ``log`` (stderr)
    until it ends and the final status is returned; Ctrl-C stops the job.
    """
    entry = batch_entrypoint(input, output, python=python, **kwargs)  # checks the parameters first
    env = dict(runtime_env or {})
    env["env_vars"] = {"RAY_USAGE_STATS_ENABLED": "0", **dict(env.get("env_vars") or {})}
    client = JobSubmissionClient(address)
    job_id = _submit_with_retry(client, entry, env)
    if not follow:
        return SubmittedBatch(job_id, str(client.get_job_status(job_id).value), address)
    status = _follow(client, job_id, log or sys.stderr, timeout_s)
    return SubmittedBatch(job_id, str(status.value), address)
