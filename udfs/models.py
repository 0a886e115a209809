"""One runner for the shared ONNX models: a manifest names each model's file, sha256, version,
input contract and labels; loading checks the file and opens it on the best execution provider
(udfs/onnx.py: CUDA where an NVIDIA device exists, CPU otherwise).

The manifest lives in the repository (models/<group>/manifest.json); the files live under the
model directory setting (TRACKIUS_MODEL_DIR, the shared data by default), never in the repository.
A missing or different file raises ModelError with a message that names the file and where to
obtain it; the analyses catch it, log it once and carry on without that model.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.errors import ModelError
from udfs.onnx import Session


@dataclass(frozen=True)
class ModelSpec:
    name: str  # the manifest key: "objects", "faces", "scenes"
    file: str  # relative to the model directory
    sha256: str
    version: str
    obtain: str  # where a missing file comes from, for the log line
    labels: str | None = None
    labels_sha256: str | None = None
    batch: int | None = None  # None: any batch size; 1: the graph is fixed to one image
    raw: Any = None  # the whole entry, for contracts that only one model reads


def read_manifest(path: Path) -> dict[str, ModelSpec]:
    try:
        entries = json.loads(path.read_text())["models"]
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot read the model manifest {path}: {exc}") from exc
    return {name: _spec(name, entry) for name, entry in entries.items()}


def _spec(name: str, entry: dict[str, Any]) -> ModelSpec:
    batch = entry.get("batch")
    return ModelSpec(
        name=name, file=entry["file"], sha256=entry["sha256"], version=entry["version"],
        obtain=entry.get("obtain", ""), labels=entry.get("labels"), labels_sha256=entry.get("labels_sha256"),
        batch=batch if isinstance(batch, int) else None, raw=entry,
    )


def read_checked(model_dir: Path, relative: str, sha256: str, obtain: str) -> bytes:
    path = model_dir / relative
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model file {path} is missing ({exc.strerror}); obtain it from {obtain}") from exc
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ModelError(f"model file {path} has sha256 {digest[:12]}…, the manifest expects {sha256[:12]}…")
    return data


def read_labels(model_dir: Path, spec: ModelSpec) -> list[str]:
    if spec.labels is None or spec.labels_sha256 is None:
        raise ModelError(f"model {spec.name} declares no labels file")
    text = read_checked(model_dir, spec.labels, spec.labels_sha256, spec.obtain).decode("utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def open_model(model_dir: Path, spec: ModelSpec, extra_outputs: tuple[str, ...] = ()) -> Session:
    """The checked model as a Session; `extra_outputs` are inner tensors to expose as outputs
    (one forward pass then yields, say, both the labels and the feature map)."""
    data = read_checked(model_dir, spec.file, spec.sha256, spec.obtain)
    if extra_outputs:
        data = _with_outputs(data, extra_outputs)
    return Session(data)


def _with_outputs(data: bytes, names: tuple[str, ...]) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    known = {output for node in model.graph.node for output in node.output}
    for name in names:
        if name not in known:
            raise ModelError(f"the model has no tensor named {name!r} to expose")
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model.SerializeToString()
