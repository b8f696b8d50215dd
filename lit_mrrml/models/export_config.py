"""``reward_config.json`` of an export folder: read, check every field, verify the weight files.

An export is only reloaded when its config is this project's, field by field (an unknown
``training_mode``, a dimension list that does not match the head, a matrix snapshot whose hash
is not the recorded one are refused with the file and the field named), and when every weight
file has the sha256 recorded at export: a corrupt or truncated file is named, never loaded into
NaN rewards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from lit_mrrml.errors import InputError
from lit_mrrml.matrix import MatrixError, RubricMatrix
from lit_mrrml.matrix.suggest import did_you_mean
from lit_mrrml.models.backbone import BackboneSpec
from lit_mrrml.models.lora import LoraSpec
from lit_mrrml.models.quantization import DTYPES, LEGACY, STORAGE_DTYPES, QuantizationSpec, backbone_fields
from lit_mrrml.textio import read_text

FORMAT = "lit_mrrml.reward/2"  # /2: sha256 of every weight file, the matrix hash
CONFIG_FILE = "reward_config.json"
HEAD_FILE = "head.safetensors"
MODES = ("frozen", "lora", "full")
HEADS = ("linear", "mlp")
CHOICES: dict[str, tuple[Any, ...]] = {"dtype": DTYPES, "quant_type": ("nf4", "fp4")}  # quant_type: older exports
QUANTIZATION_CHOICES: dict[str, tuple[Any, ...]] = {
    "bits": (4, 8),
    "quant_type": ("nf4", "fp4"),
    "double_quant": (True, False),
    "compute_dtype": (*DTYPES, None),
    "storage_dtype": (*STORAGE_DTYPES, None),
}
FIELDS = (
    "format",
    "backbone",
    "backbone_fingerprint",
    "training_mode",
    "lora",
    "embedding_dim",
    "head",
    "dimension_names",
    "matrix",
    "matrix_hash",
    "files",
)
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ExportError(InputError):
    """An export folder whose config or files are not what this project wrote."""


@dataclass(frozen=True)
class ExportConfig:
    """A checked ``reward_config.json``."""

    backbone: dict[str, Any]
    backbone_fingerprint: str | None
    training_mode: str
    lora: LoraSpec | None
    embedding_dim: int
    head: str
    dimension_names: list[str]
    matrix: dict[str, Any] | None
    matrix_hash: str | None
    files: dict[str, str]  # path inside the folder -> sha256


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weight_digests(directory: Path) -> dict[str, str]:
    """sha256 of every ``*.safetensors`` file under ``directory``, by path relative to it."""
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in sorted(directory.rglob("*.safetensors"))}


def verify_files(directory: Path, files: dict[str, str]) -> None:
    """Raise ExportError naming the first weight file that is missing or whose sha256 differs."""
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise ExportError(f"{path}: missing (listed in {CONFIG_FILE}); the export is incomplete: export it again")
        if sha256_file(path) != expected:
            raise ExportError(
                f"{path}: sha256 differs from the one recorded in {CONFIG_FILE} ({path.stat().st_size} bytes): the "
                "file is corrupt or truncated; copy it again or export again"
            )


def read_export_config(directory: Path) -> ExportConfig:
    """Read and check ``directory/reward_config.json``; raises ExportError naming the field."""
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a lit_mrrml reward model export: {CONFIG_FILE} is missing")
    try:
        raw = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ExportError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})") from None
    fields = _Fields(path, raw)
    return fields.config()


class _Fields:
    """Checks the fields of one config, each error naming the file and the field."""

    def __init__(self, path: Path, raw: Any) -> None:
        self.path = path
        if not isinstance(raw, dict):
            self.fail("", f"must be a JSON object, got {type(raw).__name__}")
        self.raw: dict[str, Any] = raw
        if raw.get("format") != FORMAT:
            old = (
                " (written by an older lit_mrrml: export it again)"
                if str(raw.get("format")).startswith("lit_mrrml.")
                else ""
            )
            self.fail("format", f"unsupported format {raw.get('format')!r}, expected {FORMAT!r}{old}")
        for key in raw:
            if key not in FIELDS:
                self.fail(key, f"unknown field{did_you_mean(key, FIELDS)}")

    def fail(self, field: str, reason: str) -> NoReturn:
        raise ExportError(f"{self.path}: {field + ': ' if field else ''}{reason}")

    def choice(self, field: str, choices: tuple[Any, ...], value: Any = None, where: str | None = None) -> str:
        value = self.raw.get(field) if where is None else value
        if not any(value is c or (type(value) is type(c) and value == c) for c in choices):  # True is not 1
            shown = ", ".join(json.dumps(c) if not isinstance(c, str) else c for c in choices)
            self.fail(where or field, f"unknown value {value!r}; expected one of {shown}")
        return str(value)

    def record(self, field: str, kind: type, value: Any = None, older: tuple[str, ...] = ()) -> dict[str, Any]:
        """A nested object (``value``, default the field's) whose keys are the fields of the dataclass
        ``kind`` (or ``older`` spellings)."""
        value = self.raw.get(field) if value is None else value
        if not isinstance(value, dict):
            self.fail(field, f"must be an object, got {type(value).__name__}")
        known = [f.name for f in dataclasses.fields(kind)]
        for key in value:
            if key not in known and key not in older:
                self.fail(f"{field}.{key}", f"unknown field{did_you_mean(key, known)}")
        return dict(value)

    def backbone(self) -> dict[str, Any]:
        spec = self.record("backbone", BackboneSpec, older=("quant_type",))
        for key, choices in CHOICES.items():
            if key in spec:
                self.choice(key, choices, spec[key], f"backbone.{key}")
        spec = backbone_fields(spec)  # older exports: quantization "4bit" and quant_type
        spec["quantization"] = self.quantization(spec.get("quantization"))
        try:
            BackboneSpec(**spec)
        except (TypeError, ValueError) as err:
            self.fail("backbone", str(err))
        return spec

    def quantization(self, value: Any) -> dict[str, Any] | None:
        """``backbone.quantization``: null or an object of QuantizationSpec's fields (older exports:
        the string none, 4bit or 8bit), as the fields of a QuantizationSpec."""
        where = "backbone.quantization"
        if isinstance(value, str) and value in LEGACY:
            value = {"bits": LEGACY[value]} if LEGACY[value] is not None else None
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(where, f"must be an object or null, got {value!r}")
        fields = self.record(where, QuantizationSpec, value)
        for key, choices in QUANTIZATION_CHOICES.items():
            if key in fields:
                self.choice(key, choices, fields[key], f"{where}.{key}")
        try:
            QuantizationSpec(**fields)
        except ValueError as err:  # its message names the field
            self.fail("", str(err))
        return fields

    def lora(self, mode: str) -> LoraSpec | None:
        if mode != "lora":
            if self.raw.get("lora") is not None:
                self.fail("lora", f"must be null for training_mode {mode!r}")
            return None
        try:
            return LoraSpec(**self.record("lora", LoraSpec))
        except TypeError as err:
            self.fail("lora", str(err))

    def dimension_names(self) -> list[str]:
        names = self.raw.get("dimension_names")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            self.fail("dimension_names", "must be a non-empty list of dimension ids")
        if len(set(names)) != len(names):
            self.fail("dimension_names", f"repeats a dimension: {names}")
        return list(names)

    def matrix(self, names: list[str]) -> tuple[dict[str, Any] | None, str | None]:
        snapshot, recorded = self.raw.get("matrix"), self.raw.get("matrix_hash")
        if snapshot is None:
            return None, None
        try:
            matrix = RubricMatrix.from_dict(snapshot, f"{self.path}: matrix")
        except MatrixError as err:
            raise ExportError(str(err)) from None
        if list(matrix.dimension_ids) != names:
            self.fail("matrix", f"its dimensions {list(matrix.dimension_ids)} are not dimension_names {names}")
        if recorded != matrix.content_hash():
            self.fail("matrix_hash", f"{recorded!r} is not the hash of the matrix snapshot ({matrix.content_hash()})")
        return matrix.to_dict(), recorded

    def files(self) -> dict[str, str]:
        files = self.raw.get("files")
        if not isinstance(files, dict) or HEAD_FILE not in files:
            self.fail("files", f"must map every weight file to its sha256, {HEAD_FILE} included")
        for name, digest in files.items():
            if not isinstance(digest, str) or not SHA256.match(digest) or Path(name).is_absolute() or ".." in name:
                self.fail(f"files.{name}", "must be a relative path inside the folder with a sha256 hex digest")
        return dict(files)

    def config(self) -> ExportConfig:
        mode = self.choice("training_mode", MODES)
        dim = self.raw.get("embedding_dim")
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            self.fail("embedding_dim", f"must be a positive integer, got {dim!r}")
        fingerprint = self.raw.get("backbone_fingerprint")
        if fingerprint is not None and not isinstance(fingerprint, str):
            self.fail("backbone_fingerprint", f"must be a string or null, got {fingerprint!r}")
        names = self.dimension_names()
        matrix, matrix_hash = self.matrix(names)
        return ExportConfig(
            backbone=self.backbone(),
            backbone_fingerprint=fingerprint,
            training_mode=mode,
            lora=self.lora(mode),
            embedding_dim=dim,
            head=self.choice("head", HEADS),
            dimension_names=names,
            matrix=matrix,
            matrix_hash=matrix_hash,
            files=self.files(),
        )


def check_head_shapes(path: Path, state: dict[str, Any], config: ExportConfig) -> None:
    """The head's tensors must fit the config: one axis per dimension, embedding_dim wide."""
    axes = state.get("axes")
    if axes is None or axes.dim() != 2:
        raise ExportError(f"{path}: no (dimensions, embedding_dim) 'axes' tensor: not a lit_mrrml reward head")
    expected = (len(config.dimension_names), config.embedding_dim)
    if tuple(axes.shape) != expected:
        raise ExportError(
            f"{path}: the head has {axes.shape[0]} dimension axes of size {axes.shape[1]}, but {CONFIG_FILE} "
            f"gives dimension_names ({expected[0]}: {config.dimension_names}) and embedding_dim {expected[1]}"
        )
