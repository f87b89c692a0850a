"""Engine work in isolated worker processes (see :mod:`lomas_core.execution.pool`)."""

from lomas_core.execution.pool import (
    ExecutionPool,
    WorkerError,
    WorkerLost,
    WorkerTimeout,
    engine_preload,
)

__all__ = ["ExecutionPool", "WorkerError", "WorkerLost", "WorkerTimeout", "engine_preload"]
