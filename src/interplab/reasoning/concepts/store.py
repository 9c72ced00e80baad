"""Concept dictionaries on disk (what ``Concepts.save`` and ``Concepts.load`` run): two files,
``<path>.safetensors`` (directions, detectors, feature indices and weights, the SAE; its metadata
repeat the format, the concept names, layer and site) and ``<path>.json`` (names, methods,
thresholds, slots, info, layer, site, the attention-sink ratio, the residual norm, metadata).

Loading checks the structure before building anything: the format, the layer and site, every
entry's fields, the tensors' shapes against the entries, and that the two files belong together
(the same names, layer and site in both), with an error that names the file and what is wrong.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor

from .dictionary import Concepts
from .sae import SAE

__all__ = ["FORMAT", "load", "save"]

FORMAT = "interplab.concepts/2"
OLD_FORMAT = "interplab.concepts/1"  # no sink ratio or residual norm; names only in the .json
SAE_KEYS = ("activation", "k", "layer", "site", "centre")  # SAE metadata that are constructor arguments
SITES = ("output", "input")


def save(concepts: Concepts, path: str | Path) -> tuple[Path, Path]:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns both paths."""
    tensors_path, json_path = paths(path)
    entries = list(concepts)
    width = max((c.features.numel() for c in entries if c.uses_sae), default=0)
    tensors: dict[str, Tensor] = {"directions": torch.stack([c.direction for c in entries]) if entries
                                  else torch.zeros(0, concepts.sae.d_in if concepts.sae else 0)}
    if width:
        features = torch.full((len(entries), width), -1, dtype=torch.long)
        weights = torch.zeros(len(entries), width)
        for i, c in enumerate(entries):
            if c.uses_sae:
                features[i, : c.features.numel()] = c.features
                weights[i, : c.weights.numel()] = c.weights
        tensors |= {"features": features, "weights": weights}
    if any(c.detector is not None for c in entries):
        tensors["detectors"] = torch.stack([torch.zeros_like(c.direction) if c.detector is None else c.detector
                                            for c in entries])
    sae_meta = None
    if concepts.sae is not None:
        sae_tensors, sae_meta = concepts.sae.state()
        tensors |= {f"sae.{name}": t for name, t in sae_tensors.items()}
    names = [c.name for c in entries]
    save_file({n: t.contiguous() for n, t in tensors.items()}, str(tensors_path),
              metadata={"format": FORMAT, "names": json.dumps(names), "layer": str(concepts.layer),
                        "site": concepts.site})
    doc = {"format": FORMAT, "layer": concepts.layer, "site": concepts.site,
           "sink_ratio": _number(concepts.sink_ratio),  # null: no token is a sink
           "residual_norm": _number(concepts.residual_norm),
           "sae": sae_meta, "metadata": concepts.metadata,
           "slots": {gate: list(members) for gate, members in concepts.slots.items()},
           "concepts": [{"name": c.name, "method": c.method, "threshold": _number(c.threshold),
                         "global_threshold": _number(c.global_threshold), "bias": c.bias, "info": c.info}
                        for c in entries]}
    json_path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return tensors_path, json_path


def load(path: str | Path, *, device: str | torch.device | None = None) -> Concepts:
    """Read a dictionary written by ``save`` (``path`` with or without the suffix)."""
    tensors_path, json_path = paths(path)
    for p in (tensors_path, json_path):
        if not p.is_file():
            raise FileNotFoundError(f"no concept file {p} (a dictionary is a .safetensors and a .json file)")
    doc = _read_json(json_path)
    tensors, meta = _read_tensors(tensors_path)
    _check(doc, tensors, meta, json_path, tensors_path)
    sae = None
    if doc["sae"] is not None:
        sae_meta = doc["sae"]
        sae = SAE(*(tensors[f"sae.{n}"] for n in ("W_enc", "W_dec", "b_enc", "b_dec")),
                  activation=sae_meta["activation"], k=int(sae_meta["k"]) if "k" in sae_meta else None,
                  threshold=tensors.get("sae.threshold"),
                  layer=int(sae_meta["layer"]) if "layer" in sae_meta else None, site=sae_meta["site"],
                  centre=sae_meta["centre"] == "true",
                  metadata={k: v for k, v in sae_meta.items() if k not in SAE_KEYS})
        if device is not None:
            sae.to(device)
    old = doc["format"] == OLD_FORMAT  # fitted before sinks were left out: keep every token, as then
    concepts = Concepts(doc["layer"], doc["site"], sae=sae, metadata=doc["metadata"],
                        sink_ratio=math.inf if old or doc["sink_ratio"] is None else float(doc["sink_ratio"]),
                        residual_norm=math.nan if old else _float(doc["residual_norm"]))
    for i, entry in enumerate(doc["concepts"]):
        thresholds = {"threshold": _float(entry["threshold"]), "global_threshold": _float(entry["global_threshold"])}
        if "features" in tensors and tensors["features"][i, 0] >= 0:
            keep = tensors["features"][i] >= 0
            concept = concepts.add(entry["name"], features=tensors["features"][i][keep],
                                   weights=tensors["weights"][i][keep], method=entry["method"],
                                   info=entry["info"], **thresholds)
            concept.direction = tensors["directions"][i]  # as saved, not recomputed
        else:
            detector = tensors["detectors"][i] if "detectors" in tensors else None
            concepts.add(entry["name"], direction=tensors["directions"][i], method=entry["method"],
                         detector=detector if detector is not None and detector.any() else None,
                         info=entry["info"], **thresholds)
    for gate, members in doc.get("slots", {}).items():
        index = [concepts.names.index(m) for m in members]
        biases = torch.tensor([doc["concepts"][i].get("bias", 0.0) for i in index])
        first = concepts[members[0]]
        if first.uses_sae:
            concepts.set_slot(gate, members, torch.stack([concepts[m].weights for m in members]), biases,
                              features=first.features)
        else:
            concepts.set_slot(gate, members, tensors["detectors"][index], biases)
    return concepts


def paths(path: str | Path) -> tuple[Path, Path]:
    """The two files of the dictionary at ``path`` (with or without a suffix)."""
    path = Path(path)
    if path.suffix in (".safetensors", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".safetensors"), path.with_name(path.name + ".json")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err}); a concept dictionary is written by Concepts.save") \
            from None
    if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, OLD_FORMAT):
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ValueError(f"{path} is not an interplab concept dictionary (format {found!r}, expected {FORMAT!r})")
    return doc


def _read_tensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = dict(handle.metadata() or {})
        return load_file(str(path)), meta
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is not a readable safetensors file ({err})") from None


def _check(doc: dict[str, Any], tensors: dict[str, Tensor], meta: dict[str, str], json_path: Path,
           tensors_path: Path) -> None:
    """Raise a ValueError naming the file and the problem unless the two files make a dictionary."""

    def require(condition: bool, problem: str, where: Path = json_path) -> None:
        if not condition:
            raise ValueError(f"{where}: {problem}")

    keys = ("layer", "site", "sae", "metadata", "concepts") + (("sink_ratio", "residual_norm")
                                                                 if doc["format"] == FORMAT else ())
    missing = [k for k in keys if k not in doc]
    require(not missing, f"the dictionary lacks the fields {missing}")
    layer, site = doc["layer"], doc["site"]
    require(isinstance(layer, int) and not isinstance(layer, bool) and layer >= 0,
            f"layer must be a decoder-layer index (an integer >= 0), got {layer!r}")
    require(site in SITES, f"site must be one of {SITES}, got {site!r}")
    require(isinstance(doc["metadata"], dict), "metadata must be an object")
    if doc["format"] == FORMAT:
        for key in ("sink_ratio", "residual_norm"):
            require(doc[key] is None or _positive(doc[key]), f"{key} must be a positive number or null, "
                                                              f"got {doc[key]!r}")
    entries = doc["concepts"]
    require(isinstance(entries, list), "concepts must be a list")
    for i, entry in enumerate(entries):
        require(isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("method"), str)
                and isinstance(entry.get("info", {}), dict),
                f"concept {i} must be an object with a name, a method and info, got {entry!r}")
        for key in ("threshold", "global_threshold"):
            value = entry.get(key)
            require(value is None or _finite(value), f"concept {entry['name']!r}: {key} must be a number or null, "
                                                     f"got {value!r}")
        require(_finite(entry.get("bias", 0.0)), f"concept {entry['name']!r}: bias must be a number")
    names = [entry["name"] for entry in entries]
    require(len(set(names)) == len(names), f"concept names repeat: {names}")
    slots = doc.get("slots", {})
    require(isinstance(slots, dict) and all(isinstance(m, list) and all(n in names for n in m)
                                            for m in slots.values()),
            f"slots must map a gate to a list of concept names of this dictionary, got {slots!r}")
    if doc["format"] == FORMAT:
        require(meta.get("format") == FORMAT, f"the tensor file says format {meta.get('format')!r}", tensors_path)
        require(meta.get("names") == json.dumps(names) and meta.get("layer") == str(layer) and meta.get("site") == site,
                f"the tensor file holds concepts {meta.get('names')} at the {meta.get('site')} of layer "
                f"{meta.get('layer')}, but {json_path.name} lists {names} at the {site} of layer {layer}: the two "
                "files do not belong together", tensors_path)
    directions = tensors.get("directions")
    require(directions is not None and directions.ndim == 2 and directions.shape[0] == len(names),
            f"the tensor 'directions' must be [{len(names)}, d_model], got "
            f"{None if directions is None else tuple(directions.shape)}", tensors_path)
    for key, dtype in (("detectors", None), ("features", torch.long), ("weights", None)):
        t = tensors.get(key)
        require(t is None or (t.ndim == 2 and t.shape[0] == len(names) and (dtype is None or t.dtype == dtype)),
                f"the tensor {key!r} must have one row per concept ({len(names)})", tensors_path)
    if "detectors" in tensors:
        require(tensors["detectors"].shape == directions.shape, "detectors must be shaped like directions",
                tensors_path)
    require(("features" in tensors) == ("weights" in tensors)
            and ("features" not in tensors or tensors["features"].shape == tensors["weights"].shape),
            "feature indices and weights go together, one row per concept", tensors_path)
    require(("features" not in tensors) or doc["sae"] is not None, "SAE concepts need the SAE, and it is missing")
    if doc["sae"] is not None:
        sae = doc["sae"]
        absent = [n for n in ("W_enc", "W_dec", "b_enc", "b_dec") if f"sae.{n}" not in tensors]
        require(isinstance(sae, dict) and not absent and {"activation", "site", "centre"} <= set(sae),
                f"the SAE is incomplete (missing tensors {absent} or fields activation / site / centre)")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value: Any) -> bool:
    return _finite(value) and value > 0


def _number(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else value


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)
