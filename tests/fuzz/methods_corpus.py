"""Bad command lines of the second wave's methods and options: AdaLoRA, prompt and prefix
tuning, MAM, the gated mix, bias and norm tuning, loss weighting, the shared adapter; and
the server's request-body limit. Same rules as
:mod:`tests.fuzz.cli_corpus`: each ends in exit code 2 with one line, and leaves nothing
that looks finished."""

from __future__ import annotations

from tests.fuzz.cli_corpus import Case, _serve, train

METHOD_CASES: list[Case] = []

BAD_METHOD_OPTIONS = {
    "adalora": {
        "target-above-initial": ("--rank", "4", "--target-rank", "8"),
        "target-zero": ("--target-rank", "0"),
        "warmup-and-final-over-one": ("--rank-warmup", "0.6", "--rank-final", "0.5"),
        "warmup-negative": ("--rank-warmup", "-0.1"),
        "interval-zero": ("--rank-interval", "0"),
        "beta-above-one": ("--importance-beta1", "1.5"),
        "orth-negative": ("--orth-reg-weight", "-1"),
        "prefix-option": ("--prefix-length", "10"),
    },
    "prompt": {
        "tokens-zero": ("--num-virtual-tokens", "0"),
        "tokens-past-context": ("--num-virtual-tokens", "9999"),
        "init-bogus": ("--prompt-init", "zeros"),
        "init-text-without-text": ("--prompt-init", "text"),
        "text-without-init-text": ("--prompt-init-text", "hello"),
        "target-modules": ("--target-modules", "query"),
        "rank-option": ("--rank", "4"),
    },
    "prefix": {
        "length-zero": ("--prefix-length", "0"),
        "length-huge": ("--prefix-length", "100000"),
        "projection-negative": ("--prefix-projection", "-1"),
        "target-not-kv": ("--target-modules", "query"),
        "rank-option": ("--rank", "4"),
        "prompt-option": ("--num-virtual-tokens", "5"),
    },
    "mam": {
        "rank-option": ("--rank", "4"),
        "scaling-negative": ("--adapter-scaling", "-4"),
        "reduction-zero": ("--reduction-factor", "0"),
        "length-zero": ("--prefix-length", "0"),
    },
    "unipelt": {
        "rank-zero": ("--rank", "0"),
        "rank-above-width": ("--rank", "100000"),
        "target-rank-option": ("--target-rank", "4"),
        "alpha-negative": ("--alpha", "-16"),
        "length-zero": ("--prefix-length", "0"),
        "reduction-zero": ("--reduction-factor", "0"),
        "non-linearity-bogus": ("--non-linearity", "sine"),
    },
    "lora": {
        "alpha-zero": ("--alpha", "0"),
        "prefix-option": ("--prefix-length", "10"),
        "prompt-option": ("--num-virtual-tokens", "5"),
        "target-rank-option": ("--target-rank", "4"),
    },
    "full": {
        "train-bias": ("--train-bias",),
        "train-norms": ("--train-norms",),
    },
    "pfeiffer": {
        "train-bias-with-value": ("--train-bias", "yes"),
        "loss-weighting-bogus": ("--loss-weighting", "tokens"),
        "scaling-zero": ("--adapter-scaling", "0"),
    },
}

for method, cases in BAD_METHOD_OPTIONS.items():
    for name, extra in cases.items():
        METHOD_CASES.append(
            Case(
                f"method {method}",
                name,
                lambda e, t, m=method, x=extra: train(e, t, "--method", m, *x),
            )
        )

# The server's request-body limit (the server must never start with these).
for value in ("0", "-1", "big"):
    METHOD_CASES.append(
        Case("serve option", f"--max-body-bytes={value}", _serve("--max-body-bytes", value))
    )

# A shared adapter needs a run of several jobs; its sampling temperature is at least 1.
METHOD_CASES.append(Case("share adapter", "one-job", lambda e, t: train(e, t, "--share-adapter")))
METHOD_CASES.append(
    Case(
        "share adapter",
        "temperature-below-one",
        lambda e, t: train(e, t, "--share-adapter", "--sampling-temperature", "0.5"),
    )
)
METHOD_CASES.append(
    Case(
        "share adapter",
        "in-a-search",
        lambda e, t: [
            "search",
            "--model",
            str(e.model),
            "--train",
            str(e.train),
            "--output",
            str(t / "s"),
            "--share-adapter",
        ],
    )
)
