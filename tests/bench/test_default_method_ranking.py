"""benchmarks.default_method's ranking: who is ranked, who is out, and how the pick is made."""

from __future__ import annotations

from collections import defaultdict

from benchmarks.default_method import TASK_SETS, rank_task

TASK = "token-classification"
FULL, SMALL = TASK_SETS[TASK]


def _scores(table: dict[str, dict[str, list[float]]]):
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for name, by_method in table.items():
        for method, values in by_method.items():
            scores[name][method] = values
    return scores


def test_the_full_set_weighs_as_much_as_all_small_sets_together() -> None:
    # "big" is best on the full-size set only; "steady" best on every small set. With the
    # two halves weighed equally they tie at a score of 1.5, and the better worst seed on
    # the small sets (steady's) decides.
    table = {FULL[0]: {"big": [90.0] * 3, "steady": [89.0] * 3}}
    for name in SMALL:
        table[name] = {"big": [70.0, 71.0, 60.0], "steady": [72.0, 73.0, 71.0]}
    found = rank_task(TASK, _scores(table), defaultdict(set))
    assert [r["score"] for r in found["rows"]] == [1.5, 1.5]
    assert found["pick"] == "steady"


def test_a_method_short_of_seeds_is_not_ranked_and_a_stuck_one_is_out() -> None:
    table = {FULL[0]: {"lora": [90.0] * 3, "few": [95.0] * 2, "stuck": [99.0] * 3}}
    for name in SMALL:
        table[name] = {"lora": [70.0] * 3, "few": [80.0] * 3, "stuck": [90.0] * 3}
    stuck = defaultdict(set, {SMALL[-1]: {"stuck"}})
    found = rank_task(TASK, _scores(table), stuck)
    assert found["pick"] == "lora"
    assert found["missing"] == {"few": [FULL[0]]}
    assert found["stuck"] == {"stuck": [SMALL[-1]]}


def test_the_small_sets_alone_rank_methods_without_full_size_runs() -> None:
    table = {FULL[0]: {"lora": [90.0] * 3}}
    for name in SMALL:
        table[name] = {"lora": [70.0] * 3, "new": [75.0] * 3}
    found = rank_task(TASK, _scores(table), defaultdict(set))
    assert found["pick"] == "lora" and found["missing"] == {"new": [FULL[0]]}
    preview = rank_task(TASK, _scores(table), defaultdict(set), small_only=True)
    assert [r["method"] for r in preview["rows"]] == ["new", "lora"]
    assert preview["sets"] == SMALL and preview["missing"] == {}
