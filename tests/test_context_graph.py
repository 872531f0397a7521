from __future__ import annotations

import random

import pytest

from serving.context_graph import ContextGraph, ContextState


def ids(text: str) -> list[int]:
    return [ord(c) for c in text]


def run(graph: ContextGraph, text: str, strict_mode: bool = True) -> tuple[float, list[float]]:
    """Total score after finalize, and the per-token deltas."""
    state = graph.root
    deltas = []
    for token in ids(text):
        delta, state, _ = graph.forward_one_step(state, token, strict_mode)
        deltas.append(delta)
    end, state = graph.finalize(state)
    assert state is graph.root
    return sum(deltas) + end, deltas


def occurrences(text: str, phrase: str) -> int:
    return sum(text.startswith(phrase, i) for i in range(len(text)))


def test_match_earns_bonus_per_token_and_completion():
    graph = ContextGraph([ids("社保卡")], score=1.5)
    total, deltas = run(graph, "办社保卡")
    # no match, two running bonuses, then the third token plus the completion reward
    assert deltas == [0.0, 1.5, 1.5, 1.5 + 4.5]
    # finalize takes back the 4.5 running bonus, leaving the phrase score once
    assert total == pytest.approx(4.5)


def test_partial_match_is_taken_back():
    graph = ContextGraph([ids("社保卡")], score=2.0)
    total, deltas = run(graph, "社保局")
    assert deltas == [2.0, 2.0, -4.0]
    assert total == 0.0
    # a partial match left open at the end is taken back by finalize
    state = graph.root
    for t in ids("社保"):
        _, state, matched = graph.forward_one_step(state, t)
        assert matched is None
    back, root = graph.finalize(state)
    assert back == -4.0 and root is graph.root


def test_overlapping_phrases():
    graph = ContextGraph([ids("社保卡"), ids("保卡"), ids("社保")], score=1.0)
    state = graph.root
    _, state, m = graph.forward_one_step(state, ord("社"))
    assert m is None
    d, state, m = graph.forward_one_step(state, ord("保"))
    assert m is not None and m.level == 2 and m.is_end  # 社保 completed
    assert d == pytest.approx(1.0 + 2.0)
    d, state, m = graph.forward_one_step(state, ord("卡"))
    # 社保卡 (3) and, through the output arc, 保卡 (2) both complete; longest reported
    assert m is state and m.level == 3
    assert d == pytest.approx(1.0 + 3.0 + 2.0)
    total, _ = run(graph, "社保卡")
    assert total == pytest.approx(3 + 2 + 2)


def test_phrase_that_is_prefix_of_another():
    graph = ContextGraph([ids("社保"), ids("社保卡")], score=1.0, phrase_texts=["社保", "社保卡"])
    total, deltas = run(graph, "社保卡")
    assert deltas == [1.0, 1.0 + 2.0, 1.0 + 3.0]
    assert total == pytest.approx(5.0)
    # the shorter phrase alone still counts, the failed extension is taken back
    total, deltas = run(graph, "社保局")
    assert deltas == [1.0, 3.0, -2.0]
    assert total == pytest.approx(2.0)
    state = graph.root
    for t in ids("社保卡"):
        _, state, matched = graph.forward_one_step(state, t)
    assert matched is not None and matched.phrase == "社保卡"


def test_scores_sum_over_a_sequence_in_strict_mode():
    phrases = ["社保卡", "保卡", "社保", "公积金", "积金", "医保", "保"]
    graph = ContextGraph([ids(p) for p in phrases], score=0.5)
    text = "我的社保卡和公积金医保社保保卡积金"
    total, _ = run(graph, text)
    expected = sum(0.5 * len(p) * occurrences(text, p) for p in phrases)
    assert total == pytest.approx(expected)


def test_random_texts_match_substring_count():
    rng = random.Random(7)
    alphabet = "abcd"
    phrases = sorted({"".join(rng.choices(alphabet, k=rng.randint(1, 4))) for _ in range(8)})
    scores = [rng.choice([0.0, 0.5, 2.0]) for _ in phrases]
    graph = ContextGraph([ids(p) for p in phrases], score=1.0, phrase_scores=scores)

    # with shared prefixes a node takes the largest bonus of the phrases through it
    def phrase_score(p: str) -> float:
        node, s = graph.root, 0.0
        for t in ids(p):
            node = node.next[t]
            s += node.token_score
        return s

    for _ in range(50):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 20)))
        total, _ = run(graph, text)
        expected = sum(phrase_score(p) * occurrences(text, p) for p in phrases)
        assert total == pytest.approx(expected), text


def test_non_strict_mode_rewards_longest_and_restarts():
    graph = ContextGraph([ids("社保卡"), ids("保卡")], score=1.0)
    state = graph.root
    for t in ids("社保"):
        _, state, _ = graph.forward_one_step(state, t, strict_mode=False)
    d, state, m = graph.forward_one_step(state, ord("卡"), strict_mode=False)
    assert state is graph.root and m is not None and m.level == 3
    assert d == pytest.approx(1.0 + 3.0 - 3.0)
    total, _ = run(graph, "社保卡", strict_mode=False)
    assert total == pytest.approx(3.0)


def test_per_phrase_scores_and_shared_prefix_takes_max():
    graph = ContextGraph([ids("社保"), ids("社区")], score=1.0, phrase_scores=[3.0, 0.0])
    she = graph.root.next[ord("社")]
    assert she.token_score == 3.0
    assert she.next[ord("区")].node_score == pytest.approx(4.0)
    assert run(graph, "社保")[0] == pytest.approx(6.0)
    assert run(graph, "社区")[0] == pytest.approx(4.0)


def test_from_texts_and_errors():
    graph = ContextGraph.from_texts(["社保卡", "", " 医保 "], ids, score=2.0)
    assert isinstance(graph.root, ContextState)
    total, _ = run(graph, "医保社保卡")
    assert total == pytest.approx(4.0 + 6.0)
    with pytest.raises(ValueError, match="encodes to no tokens"):
        ContextGraph.from_texts(["社保"], lambda s: [], score=1.0)
    with pytest.raises(ValueError, match="one score per phrase"):
        ContextGraph([ids("社保")], phrase_scores=[1.0, 2.0])
    with pytest.raises(ValueError, match="at least one token"):
        ContextGraph([[]])


def test_build_alias_and_size():
    graph = ContextGraph.build([ids("社保卡"), ids("社保")], score=1.0)
    assert len(graph) == 4  # root + 社 + 保 + 卡
