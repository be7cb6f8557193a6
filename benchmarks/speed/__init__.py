"""Training and inference speed benchmark: adapterkit against full fine-tuning, peft and AdapterHub.

    .venv/bin/python -m benchmarks.speed            # full run (minutes to hours), writes docs
    .venv/bin/python -m benchmarks.speed --quick    # tiny config, seconds, writes nothing in docs/

Every training configuration runs in its own subprocess (so peak memory is its own),
one after another, on the same synthetic batches. The peers run in their own virtual
environments (``.venv-peft``, ``.venv-adapters``): they are benchmark-only dependencies.

Modules here other than ``ours`` and ``__main__`` import only torch and transformers,
because they also run inside the peers' environments.
"""
