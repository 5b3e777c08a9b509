"""The Hugging Face Hub, used the way `transformers` uses it: a model, config, tokenizer or dataset
named by its Hub id is downloaded into the standard Hugging Face cache when the Hub is reachable, and
read from that cache otherwise. `HF_HUB_OFFLINE=1` (or `TRANSFORMERS_OFFLINE=1`) never contacts it. A
from-scratch run with a bundled config (`--checkpoint 0`) never needs it.
"""


def offline() -> bool:
    """True when the environment forbids contacting the Hub (HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE)."""
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def not_available(flag: str, name: str, what: str, err: Exception, revision=None) -> str:
    """One line for a Hub download that failed: which flag and name, why in a few words, and the two ways
    to provide it (a local folder, or the cache filled on a machine that reaches the Hub)."""
    rev = f" (revision {revision})" if revision else ""
    why = ("HF_HUB_OFFLINE is set and it is not in the Hugging Face cache" if offline() else
           "it is not in the Hugging Face cache and the Hub did not provide it")
    detail = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
    fetch = f"hf download {name}" + (f" --revision {revision}" if revision else "")
    return (f"{flag} {name}: {what}{rev} could not be loaded: {why} ({detail}); pass a local folder instead, "
            f"or fill the cache where the Hub is reachable (`{fetch}`, then copy ~/.cache/huggingface)")
