"""Hot-word biasing graph: an Aho-Corasick automaton over token ids.

Used by the torch beam search (``training.decode``) and by the ONNX engine
(``serving.engine``). The scoring follows icefall's / sherpa-onnx's ``ContextGraph``:

* every token that extends a partial match earns the phrase's per-token bonus,
  which keeps the hypothesis alive in the beam;
* when a partial match breaks, the search follows fail arcs to the longest suffix
  that is still a prefix of some phrase, and the bonus earned beyond that suffix is
  taken back;
* when a phrase ends at the new state (itself, or a phrase reachable through output
  arcs), the full score of every such phrase is added once more as a completion
  reward;
* ``finalize`` at the end of decoding takes back the running bonus of the last
  state, so a hypothesis keeps exactly the sum of the scores of the phrases it
  contains (a phrase's score = its per-token bonus times its length).

Pure Python, no numpy: ``serving`` deploys lean.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["ContextGraph", "ContextState"]


@dataclass(eq=False)
class ContextState:
    """One node of the graph (a prefix of at least one phrase).

    ``node_score`` is the bonus accumulated from the root to this node;
    ``output_score`` the total score of all phrases ending here (this node if it is a
    phrase end, plus those reached through output arcs).
    """

    id: int
    token: int
    level: int
    token_score: float = 0.0
    node_score: float = 0.0
    output_score: float = 0.0
    is_end: bool = False
    phrase: str = ""
    next: dict[int, ContextState] = field(default_factory=dict, repr=False)
    fail: ContextState | None = field(default=None, repr=False)
    output: ContextState | None = field(default=None, repr=False)

    @property
    def is_root(self) -> bool:
        return self.level == 0


class ContextGraph:
    """Aho-Corasick hot-word graph over token-id phrases.

    Args:
      phrases: one list of token ids per phrase.
      score: default bonus per token.
      phrase_scores: optional per-phrase bonus per token; 0 or ``None`` means ``score``.
      phrase_texts: optional text of each phrase, kept on its end state (``state.phrase``).

    Where phrases share a prefix, the shared node takes the largest of their bonuses.
    """

    def __init__(
        self,
        phrases: Sequence[Sequence[int]],
        score: float = 1.5,
        phrase_scores: Sequence[float | None] | None = None,
        phrase_texts: Sequence[str] | None = None,
    ) -> None:
        if phrase_scores is not None and len(phrase_scores) != len(phrases):
            raise ValueError(
                f"phrase_scores has {len(phrase_scores)} entries but there are "
                f"{len(phrases)} phrases; give one score per phrase (0 = default)"
            )
        if phrase_texts is not None and len(phrase_texts) != len(phrases):
            raise ValueError(
                f"phrase_texts has {len(phrase_texts)} entries but there are "
                f"{len(phrases)} phrases; give one text per phrase"
            )
        self.score = float(score)
        self.root = ContextState(id=0, token=-1, level=0)
        self.root.fail = self.root
        self.num_nodes = 1
        for i, tokens in enumerate(phrases):
            own = None if phrase_scores is None else phrase_scores[i]
            bonus = self.score if not own else float(own)
            text = "" if phrase_texts is None else phrase_texts[i]
            self._insert(list(tokens), bonus, text)
        self._link()

    @classmethod
    def build(
        cls,
        token_ids_per_phrase: Sequence[Sequence[int]],
        score: float = 1.5,
        phrase_scores: Sequence[float | None] | None = None,
        phrase_texts: Sequence[str] | None = None,
    ) -> ContextGraph:
        """Same as the constructor (named like icefall's ``ContextGraph.build``)."""
        return cls(token_ids_per_phrase, score, phrase_scores, phrase_texts)

    @classmethod
    def from_texts(
        cls,
        texts: Sequence[str],
        token_table_encode: Callable[[str], list[int]],
        score: float = 1.5,
        phrase_scores: Sequence[float | None] | None = None,
    ) -> ContextGraph:
        """Build from phrase texts, tokenised by ``token_table_encode`` (text -> ids).

        Blank lines are skipped; a phrase that encodes to no tokens is an error.
        """
        kept: list[str] = []
        kept_scores: list[float | None] = []
        ids: list[list[int]] = []
        for i, text in enumerate(texts):
            text = text.strip()
            if not text:
                continue
            tokens = list(token_table_encode(text))
            if not tokens:
                raise ValueError(
                    f"hot word {text!r} encodes to no tokens; check the token table "
                    "covers its characters or drop it"
                )
            kept.append(text)
            kept_scores.append(None if phrase_scores is None else phrase_scores[i])
            ids.append(tokens)
        return cls(ids, score, kept_scores, kept)

    def _insert(self, tokens: list[int], bonus: float, text: str) -> None:
        if not tokens:
            raise ValueError("a hot-word phrase must have at least one token; got []")
        node = self.root
        for level, token in enumerate(tokens, start=1):
            child = node.next.get(token)
            if child is None:
                child = ContextState(id=self.num_nodes, token=int(token), level=level)
                child.token_score = bonus
                node.next[token] = child
                self.num_nodes += 1
            else:
                child.token_score = max(child.token_score, bonus)
            node = child
        node.is_end = True
        node.phrase = text

    def _link(self) -> None:
        """Breadth-first: node scores, fail arcs, output arcs and output scores."""
        queue: deque[ContextState] = deque([self.root])
        # Fail targets are shallower, so they are complete by the time a node is reached.
        while queue:
            node = queue.popleft()
            if not node.is_root:
                fail = node.fail
                assert fail is not None
                node.output = fail if fail.is_end else fail.output
                node.output_score = (node.node_score if node.is_end else 0.0) + (
                    node.output.output_score if node.output is not None else 0.0
                )
            for token, child in node.next.items():
                child.node_score = node.node_score + child.token_score
                assert node.fail is not None
                child.fail = self.root if node.is_root else self._goto(node.fail, token)
                queue.append(child)

    def _goto(self, state: ContextState, token: int) -> ContextState:
        """Follow fail arcs from ``state`` to the deepest node with a ``token`` child."""
        while token not in state.next and not state.is_root:
            assert state.fail is not None
            state = state.fail
        return state.next.get(token, self.root)

    def forward_one_step(
        self, state: ContextState, token: int, strict_mode: bool = True
    ) -> tuple[float, ContextState, ContextState | None]:
        """Advance ``state`` by ``token``.

        Returns ``(score_delta, next_state, matched)``, where ``matched`` is the end state
        of the longest phrase completed by this token, or ``None``.

        With ``strict_mode`` (icefall's default) matching continues after a phrase ends,
        so overlapping and nested phrases all count. Without it (sherpa-onnx's ASR
        setting) a completed match rewards only its longest phrase and restarts at the
        root.
        """
        node = self._goto(state, token)
        # Extending the match earns the token's bonus; falling back along fail arcs
        # takes back what was earned beyond the suffix kept.
        delta = node.node_score - state.node_score
        matched = node if node.is_end else node.output
        if matched is None:
            return delta, node, None
        if not strict_mode:
            return delta + matched.node_score - node.node_score, self.root, matched
        return delta + node.output_score, node, matched

    def finalize(self, state: ContextState) -> tuple[float, ContextState]:
        """End of a hypothesis: take back the running bonus of ``state``; go to the root."""
        return -state.node_score, self.root

    def is_matched(self, state: ContextState) -> ContextState | None:
        """The end state of the longest phrase ending at ``state``, or ``None``."""
        return state if state.is_end else state.output

    def __len__(self) -> int:
        return self.num_nodes
