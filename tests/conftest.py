"""Shared test set-up: the offline data mirror, tiny models built from a config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Tests read the offline mirror; nothing here downloads.
if not os.environ.get("MEDSYN_DATA_DIR") and SHARED_DATA.is_dir():
    os.environ["MEDSYN_DATA_DIR"] = str(SHARED_DATA)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    value = os.environ.get("MEDSYN_DATA_DIR")
    if not value:
        pytest.skip("no offline data mirror: set MEDSYN_DATA_DIR")
    if not Path(value).is_dir():
        pytest.skip(f"no offline data mirror: MEDSYN_DATA_DIR={value} is not a folder")
    return Path(value)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """A random-weight chat causal LM with a tokenizer trained on a few sentences."""
    from medsyn_utils.testing.tiny import tiny_causal_lm
    return tiny_causal_lm(tmp_path_factory.mktemp("tiny-lm") / "model")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> Path:
    """A random-weight BERT encoder with a tokenizer trained on a few sentences."""
    from medsyn_utils.testing.tiny import tiny_encoder
    return tiny_encoder(tmp_path_factory.mktemp("tiny-encoder") / "model")


@pytest.fixture(scope="session")
def varied_lm_dir(tiny_lm_dir, tmp_path_factory) -> Path:
    """The tiny LM with larger random weights, so its greedy output depends on the prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" not in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    folder = tmp_path_factory.mktemp("varied-lm") / "model"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_lm_dir).save_pretrained(folder)
    return folder


# Hypothesis profiles (tests/core/test_readers_fuzz.py): bounded in `make test`, a fixed seed
# (derandomized) in CI, longer when asked for. Choose with HYPOTHESIS_PROFILE=ci|default|long;
# CI=true picks ci.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    settings = None
if settings is not None:
    _quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
    settings.register_profile("ci", max_examples=30, derandomize=True, deadline=None,
                              suppress_health_check=_quiet, print_blob=True)
    settings.register_profile("default", max_examples=30, deadline=None,
                              suppress_health_check=_quiet, print_blob=True)
    settings.register_profile("long", max_examples=600, deadline=None,
                              suppress_health_check=_quiet, print_blob=True)
    _chosen = os.environ.get("HYPOTHESIS_PROFILE") or (
        "ci" if os.environ.get("CI", "").lower() in ("1", "true", "yes") else "default")
    settings.load_profile(_chosen)
