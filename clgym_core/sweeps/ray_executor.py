"""The Ray executor: every job a Ray task on an existing cluster (``--address``) or a local instance.

Each task asks Ray for the CPUs its run uses (``trainer.num_threads``, else the
executor's thread count) and one GPU when its spec names a CUDA device, so Ray
places as many runs on a node as fit. Run directories are written by the task
where it runs: on a cluster, ``--out`` must be a path every node sees (a shared
file system); on one machine it is simply DIR. Needs ``pip install 'clgym-core[ray]'``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from clgym_core.sweeps.plan import SweepError

RAY_HINT = "pip install 'clgym-core[ray]'"


def job_resources(args: tuple, threads: int) -> dict[str, float]:
    """CPUs and GPUs for one job: a sweep point's spec (its second argument) may ask for CUDA."""
    spec = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
    trainer = spec.get("trainer") if isinstance(spec.get("trainer"), dict) else {}
    cpus = trainer.get("num_threads") or threads
    device = str(trainer.get("device", "cpu"))
    return {"num_cpus": float(cpus), "num_gpus": 1.0 if device.startswith("cuda") else 0.0}


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, threads: int = 1, workers: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise SweepError(f"--executor ray: Ray is not installed; {RAY_HINT}") from None
        self.address, self.threads = address, max(1, int(threads))

    def _init(self) -> Any:
        import ray

        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = self.address or "a local instance"
                raise SweepError(f"--address {where}: cannot connect to Ray ({str(exc).splitlines()[0]})") from None
        return ray

    def run(self, fn: Callable[..., Any], jobs: Sequence[tuple], on_event: Callable[[str, int, Any], None]) -> None:
        if not jobs:
            return
        ray = self._init()
        task = ray.remote(fn)
        refs: dict[Any, int] = {}
        for index, args in enumerate(jobs):
            refs[task.options(**job_resources(args, self.threads)).remote(*args)] = index
            on_event("start", index, None)  # queued on the cluster; Ray starts it when resources free up
        pending = list(refs)
        try:
            while pending:
                done, pending = ray.wait(pending, num_returns=1, timeout=0.5)
                for ref in done:
                    try:
                        result = ray.get(ref)
                    except Exception as exc:  # the worker died or the task raised past run_point
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        result = {"status": "failed", "reason": f"ray task failed: {first}", "seconds": 0.0}
                    on_event("done", refs[ref], result)
                    if isinstance(result, dict) and result.get("status") == "interrupted":
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref)
            raise
