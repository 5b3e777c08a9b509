"""Train a causal LM on a mixture of data groups chosen by a data-mixing method.

    python main.py                      # demo: tiny model, embedded corpus, stratified mixture
    python main.py --aioli              # the same with Aioli
    python main.py --task_name slimpj --train_data_dir D --val_data_dir D --slice_list arxiv \
        stackexchange --model EleutherAI/pythia-160m --checkpoint 0 --aioli ...   # the paper's lines

parse -> validate -> build -> run -> write results. Every user mistake is one line and exit code 2.
"""
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from errors import exit_on_usage_error  # noqa: E402


def print_table(results: dict):
    groups = results["groups"]
    has_test = "test_loss" in results
    width = max(len(g) for g in groups + ["average"])
    head = f"{'group':<{width}}  weight  val loss  val ppl" + ("  test loss  test ppl" if has_test else "")
    print(head)
    print("-" * len(head))
    for g in groups:
        row = f"{g:<{width}}  {results['final_weights'][g]:6.3f}  {results['val_loss'][g]:8.4f}  " \
              f"{results['val_perplexity'][g]:7.2f}"
        if has_test:
            row += f"  {results['test_loss'][g]:9.4f}  {results['test_perplexity'][g]:8.2f}"
        print(row)
    avg = f"{'average':<{width}}  {'':6}  {results['average_val_loss']:8.4f}  {results['average_val_perplexity']:7.2f}"
    if has_test:
        avg += f"  {results['average_test_loss']:9.4f}  {results['average_test_perplexity']:8.2f}"
    print(avg)


@exit_on_usage_error
def main(argv=None):
    from trainer.config import resolve

    cfg = resolve(sys.argv[1:] if argv is None else argv)
    from trainer.build import build

    from trainer.distributed import shutdown

    from trainer.export import model_folder_extras, write_run_plots

    trainer, config, evaluate_only = build(cfg)
    run_dir = trainer.run_dir
    try:
        if evaluate_only:  # --use_saved_model found this configuration's saved model: evaluate it
            results = trainer.finish(status="evaluated")
        else:
            results = trainer.run()
            if cfg.output.save_model and results["status"] == "complete":
                run_dir.save_model(trainer.model_to_save(),
                                   model_folder_extras(config, results, trainer.tokenizer_file))
        run_dir.write_results(results)
        trainer.metrics.close()
        if trainer.dist.main and results["status"] != "evaluated":
            write_run_plots(run_dir.path)
        trainer.dist.wait_for_all()  # only on success: after an error the other ranks may never arrive
    finally:
        run_dir.release()  # the run directory's lock (also released by the OS if the process dies)
        shutdown()  # the torchrun process group, if any
    if trainer.dist.main:
        print(f"\n{cfg.method} run {results['status']} at step {results['step']}: {run_dir.path}")
        print_table(results)

if __name__ == "__main__":
    main()
