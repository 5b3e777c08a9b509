"""What a finished run leaves for people: a Hugging Face model folder that `from_pretrained` and
`pipeline("text-generation")` load (--save_model), and PNG plots of what the mixer did.

The model folder holds what `save_pretrained` writes (config, safetensors weights, generation config),
the tokenizer the data was tokenized with (as a `PreTrainedTokenizerFast`: tokenizer.json,
tokenizer_config.json), and a model card (README.md) naming the groups, the method and the mixture.
"""
import json
import os
import warnings

from data.tokenization import EOS_CANDIDATES


def hf_tokenizer(tokenizer_file):
    """A PreTrainedTokenizerFast over the data's tokenizer, with its end-of-document token as eos (and pad,
    which text generation needs)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer.from_file(tokenizer_file)
    eos = next((t for t in EOS_CANDIDATES if raw.token_to_id(t) is not None), None)
    return PreTrainedTokenizerFast(tokenizer_object=raw, eos_token=eos, pad_token=eos, bos_token=eos)


def model_card(config: dict, results: dict) -> str:
    """README.md of the saved model: YAML metadata for the Hub, then what it was trained on and how."""
    groups = results.get("groups") or config.get("groups") or []
    final = results.get("final_weights") or {}
    tags = list(dict.fromkeys(["data-mixing", "aioli", str(results.get("method", "static"))]))
    start = "trained from scratch" if config.get("checkpoint") == 0 else f"from checkpoint {config.get('checkpoint')}"
    lines = ["---", "library_name: transformers", "pipeline_tag: text-generation", f"tags: [{', '.join(tags)}]",
             "---", "",
             f"# {results.get('run_name') or 'model'}", "",
             f"A causal language model ({config.get('model_name')}, {start}) on a mixture of {len(groups)} data groups "
             f"chosen by the `{results.get('method', 'static')}` "
             f"data-mixing method, for {results.get('step')} steps ({results.get('tokens')} tokens), seed "
             f"{config.get('selection_seed')}.", "",
             "| group | final weight | test loss | test perplexity |", "|---|---|---|---|"]
    for g in groups:
        loss, ppl = (results.get("test_loss") or {}).get(g), (results.get("test_perplexity") or {}).get(g)
        lines.append(f"| {g} | {final.get(g, float('nan')):.3f} | "
                     + (f"{loss:.4f} | {ppl:.2f} |" if loss is not None and ppl is not None else "- | - |"))
    if results.get("average_test_perplexity") is not None:
        lines += ["", f"Average test perplexity (mean over groups): {results['average_test_perplexity']:.2f}."]
    lines += ["", "Mixture over training (step: weights):", "", "```"]
    lines += [json.dumps({"step": e.get("step"), "weights": e.get("weights")})
              for e in (results.get("weights_trajectory") or [])[:50]]
    lines += ["```", "", "Training settings (config.json of the run):", "", "```json",
              json.dumps({k: v for k, v in config.items() if k not in ("versions", "resumes")}, indent=1,
                         default=str), "```", ""]
    return "\n".join(lines)


def model_folder_extras(config: dict, results: dict, tokenizer_file):
    """A function(folder, model) for RunDir.save_model, called before the model is saved: the tokenizer, the
    eos ids on the model's configs (written by save_pretrained) and the model card."""
    def write(folder, model):
        if tokenizer_file:
            tok = hf_tokenizer(tokenizer_file)
            tok.save_pretrained(folder)
            if tok.eos_token_id is not None:  # generation stops at the data's end-of-document token
                for cfg in (model.config, model.generation_config):
                    cfg.eos_token_id = cfg.pad_token_id = tok.eos_token_id
                    if cfg.bos_token_id is None:
                        cfg.bos_token_id = tok.eos_token_id
        else:
            warnings.warn("--save_model: the data's tokenizer is not available here; model/ has no tokenizer "
                          "files (copy them from the tokenizer you prepared the data with)", stacklevel=2)
        with open(os.path.join(folder, "README.md"), "w") as fh:
            fh.write(model_card(config, results))
    return write


def write_run_plots(run_path) -> list:
    """PNGs in <run>/plots/: the mixture over time, the per-group validation loss, and Aioli's A per round;
    a plot that cannot be drawn is skipped with a warning (the run's results are already written)."""
    try:
        from analysis import plots
        from analysis.runs import load_run

        run = load_run(run_path)
        folder = os.path.join(run_path, "plots")
        drawn = [plots.plot_weights(run, os.path.join(folder, "mixture.png"), static_too=True),
                 plots.plot_val_loss(run, os.path.join(folder, "val_loss.png")),
                 plots.plot_A(run, os.path.join(folder, "aioli_A.png"))]
        return [p for p in drawn if p]
    except Exception as err:  # plotting must never turn a finished run into a failed one
        warnings.warn(f"plots of {run_path} not drawn: {type(err).__name__}: {err}", stacklevel=2)
        return []
