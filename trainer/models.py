"""Model building: bundled configs (no hub needed from scratch), pretrained loading, attention choice.

`--checkpoint 0` builds a fresh model from a bundled config: the Pythia family (14m ... 410m, the
published architecture hyper-parameters) or the tiny CPU configs `tiny` and `mini`, without the Hub.
Any other `--checkpoint N` loads the pretrained weights of revision `stepN` (Pythia's intermediate
checkpoints; none: the latest) from a local folder or by Hub id, through the Hugging Face cache
(hub.py: downloaded when online, from the cache when offline or HF_HUB_OFFLINE=1).
"""
import copy
import logging
import warnings
from dataclasses import dataclass
from typing import Optional

import torch

import hub
from errors import UsageError
from options import option


@dataclass(frozen=True)
class ModelOptions:
    """The model, its weights and its numerics."""

    model_name: Optional[str] = option(
        None, "HF model id or local path, or a bundled config: tiny, mini, EleutherAI/pythia-{14m,31m,70m,160m,410m} "
        "(default: EleutherAI/pythia-160m, or tiny for the demo)", aliases=("model",))
    checkpoint: Optional[int] = option(None, "0: fresh model from the config (from scratch); N: Pythia revision "
                                       "stepN; omitted: pretrained weights from a local path or the HF cache")
    use_flash_attention: bool = option(False, "FlashAttention-2 when importable on CUDA, else SDPA (one warning); "
                                       "implies bf16 precision unless --precision is given")
    precision: Optional[str] = option(
        None, "fp32 (CPU default), bf16-autocast with fp32 master weights (GPU default with --use_flash_attention), "
        "or bf16-pure weights as in the paper", choices=("fp32", "bf16-autocast", "bf16-pure"))
    compile: bool = option(False, "torch.compile the training forward and backward (evaluation stays eager)")
    fsdp: bool = option(False, "under torchrun, shard parameters, gradients and optimizer state over the ranks "
                        "(FSDP2, one unit per transformer block) instead of replicating the model (DDP); "
                        "checkpoints are then written with torch.distributed.checkpoint")
    peak_tflops: Optional[float] = option(None, "the device's peak TFLOP/s for the MFU figure in metrics.jsonl "
                                          "(default: looked up for known GPUs; no MFU otherwise)")

    def check(self):
        if self.peak_tflops is not None and not self.peak_tflops > 0:
            raise UsageError(f"--peak_tflops: must be a positive number of TFLOP/s, got {self.peak_tflops}")

log = logging.getLogger(__name__)

_PYTHIA_COMMON = dict(
    vocab_size=50304, max_position_embeddings=2048, rotary_pct=0.25, rotary_emb_base=10000,
    use_parallel_residual=True, hidden_act="gelu", layer_norm_eps=1e-5, initializer_range=0.02,
    bos_token_id=0, eos_token_id=0, tie_word_embeddings=False, attention_dropout=0.0, hidden_dropout=0.0,
)
# (hidden size, layers, heads); intermediate = 4 x hidden, as in every Pythia model.
_PYTHIA_SHAPES = {
    "14m": (128, 6, 4), "31m": (256, 6, 8), "70m": (512, 6, 8), "160m": (768, 12, 12), "410m": (1024, 24, 16),
}
# Tiny CPU configs: the vocabulary comes from the data (a 4k-8k demo tokenizer keeps them fast).
_TINY_SHAPES = {"tiny": (128, 2, 4), "mini": (256, 4, 4)}


def bundled_config_name(model_name: str):
    """'pythia-160m' for any spelling of a bundled Pythia name, 'tiny'/'mini', else None."""
    name = model_name.lower()
    if name in _TINY_SHAPES:
        return name
    base = name.rsplit("/", 1)[-1].replace("-deduped", "")
    if base.startswith("pythia-") and base[len("pythia-"):] in _PYTHIA_SHAPES:
        return base
    return None


def is_tiny(model_name: str) -> bool:
    return model_name.lower() in _TINY_SHAPES


def bundled_config(model_name: str, data_vocab_size=None, context_length: int = 2048):
    """A GPTNeoXConfig for a bundled name. Tiny configs size their vocabulary to the data's."""
    from transformers import GPTNeoXConfig

    key = bundled_config_name(model_name)
    if key is None:
        raise UsageError(f"--model {model_name}: no bundled config with this name; bundled: tiny, mini, "
                         + ", ".join(f"EleutherAI/pythia-{s}" for s in _PYTHIA_SHAPES))
    if key in _TINY_SHAPES:
        hidden, layers, heads = _TINY_SHAPES[key]
        # the paper's headerless uint16 shards do not record their vocabulary: every uint16 id must fit
        vocab = int(data_vocab_size or 65536)
        vocab = -(-vocab // 64) * 64  # a multiple of 64 keeps matmuls aligned
        fields = dict(_PYTHIA_COMMON, vocab_size=vocab, max_position_embeddings=max(context_length, 256))
    else:
        hidden, layers, heads = _PYTHIA_SHAPES[key[len("pythia-"):]]
        fields = dict(_PYTHIA_COMMON)
    return GPTNeoXConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                         intermediate_size=4 * hidden, **fields)


def choose_attention(use_flash_attention: bool, device: torch.device) -> str:
    """flash_attention_2 when asked for and usable, else sdpa (with one warning when asked for)."""
    if not use_flash_attention:
        return "sdpa"
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401

            return "flash_attention_2"
        except ImportError:
            reason = "the flash-attn package is not installed (pip install -r requirements-gpu.txt)"
    else:
        reason = f"FlashAttention-2 needs a CUDA device, this run is on {device.type}"
    warnings.warn(f"--use_flash_attention: {reason}; using PyTorch SDPA attention instead", stacklevel=2)
    return "sdpa"


def build_model(model_name: str, checkpoint, *, data_vocab_size, context_length, attn_implementation, dtype):
    """Fresh (checkpoint == 0) or pretrained model; checks that the data's vocabulary fits."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bar is the only one; errors must stay one line

    if checkpoint == 0:
        if bundled_config_name(model_name) is not None:
            config = bundled_config(model_name, data_vocab_size, context_length)
        else:
            try:
                config = AutoConfig.from_pretrained(model_name)
            except (OSError, ValueError) as err:
                raise UsageError(hub.not_available("--model", model_name, "no bundled config; its config.json",
                                                   err)) from None
        # from_config mutates the config it is given (attention implementation): give it a copy.
        model = AutoModelForCausalLM.from_config(copy.deepcopy(config), attn_implementation=attn_implementation,
                                                 dtype=dtype)
    else:
        if is_tiny(model_name):
            raise UsageError(f"--model {model_name} is a bundled from-scratch config: pass --checkpoint 0")
        revision = f"step{checkpoint}" if checkpoint is not None else None
        try:
            model = AutoModelForCausalLM.from_pretrained(model_name, revision=revision,
                                                         attn_implementation=attn_implementation, dtype=dtype)
        except (OSError, ValueError) as err:
            raise UsageError(hub.not_available("--model", model_name, "the pretrained weights", err, revision)
                             + " (or train from scratch with --checkpoint 0)") from None
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions and context_length > positions:
        raise UsageError(f"--context_length {context_length} is longer than the {positions} positions of --model "
                         f"{model_name}; use --context_length {positions} or less")
    model_vocab = model.get_input_embeddings().weight.shape[0]
    if data_vocab_size is not None and data_vocab_size > model_vocab:
        raise UsageError(f"the data's vocabulary ({data_vocab_size} tokens) is larger than the model's "
                         f"({model_vocab}); prepare the data with the model's tokenizer (--tokenizer) or use a "
                         "model with a larger vocabulary")
    return model


def load_frozen_model(path: str, device, dtype=torch.float32):
    """A model saved with --save_model (or any local HF model dir), in eval mode, without gradients.
    Used for DoReMi's reference model."""
    import os

    from transformers import AutoModelForCausalLM

    if os.path.isdir(os.path.join(path, "model")):
        path = os.path.join(path, "model")
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise UsageError(f"{path}: no saved model here; run the reference with --save_model and pass its run "
                         "directory or its model/ folder")
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    model.to(device).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


# Dense bf16 peak TFLOP/s by device-name substring (vendor data sheets, without sparsity)
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0,
                    "RTX 4090": 165.0, "V100": 125.0}


def peak_tflops(device, override=None):
    """The device's peak TFLOP/s for MFU: --peak_tflops, else the table for a known GPU, else None."""
    if override is not None:
        return float(override)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)


def flops_per_token(config, context_length: int) -> float:
    """Training FLOPs per token (forward + backward): 6 per weight of the non-embedding matrices plus the
    lm head, and 12 x layers x width x context for the attention scores (the usual count, as in the
    PaLM paper's MFU); what MFU divides by."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    inner = getattr(config, "intermediate_size", 4 * hidden)
    per_layer = 4 * hidden * hidden + 2 * hidden * inner  # q, k, v, out; the two MLP matrices
    weights = layers * per_layer + hidden * config.vocab_size  # + the lm head
    return 6.0 * weights + 12.0 * layers * hidden * context_length
