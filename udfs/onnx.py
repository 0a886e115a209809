"""ONNX Runtime sessions whose every call runs on a thread Python itself started (see
udfs/threads.py: onnxruntime's bindings deadlock when called from PyFlink's Java task threads).

CUDA is used where there is an NVIDIA device to run it: onnxruntime-gpu lists the CUDA provider
even on hosts without one, and trying it there prints two error lines before falling back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas.errors import ModelError
from udfs.threads import on_python_thread

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def providers() -> list[str]:
    import onnxruntime as ort

    if CUDA in ort.get_available_providers() and Path("/dev/nvidiactl").exists():
        return [CUDA, CPU]
    return [CPU]


class Session:
    """An InferenceSession, single-threaded (the job runs one operator per core)."""

    def __init__(self, model: bytes) -> None:
        self._session = on_python_thread(_open, model)
        self.inputs = [(i.name, i.type, i.shape) for i in self._session.get_inputs()]
        self.providers = self._session.get_providers()

    def run(self, outputs: list[str], feeds: dict[str, Any]) -> list[Any]:
        return on_python_thread(_run, self._session, outputs, feeds)


def _failures() -> tuple[type[Exception], ...]:
    """onnxruntime's own errors (not Python's RuntimeError: they derive from Exception)."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return (state.Fail, state.InvalidArgument, state.InvalidGraph, state.InvalidProtobuf,
            state.NotImplemented, state.RuntimeException)


def _run(session, outputs: list[str], feeds: dict[str, Any]) -> list[Any]:
    try:
        return session.run(outputs, feeds)
    except _failures() as exc:
        raise ModelError(f"onnxruntime failed on a batch: {exc}") from exc


def _open(model: bytes):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(model, options, providers=providers())
    except _failures() as exc:
        raise ModelError(f"onnxruntime cannot open the model: {exc}") from exc
