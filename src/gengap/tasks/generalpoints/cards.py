"""Cards, face rules and the study's dealer.

Dealing follows "SFT Memorizes, RL Generalizes": four ranks drawn independently and uniformly
from 1..13 (not from a 52-card deck), the rule-OOD dealer forces one face card (three ranks from
1..13 plus one from 11..13, shuffled), and a hand is redrawn until it is solvable.

Randomness is counter-based: draw `attempt` of sample `index` of `split` under `seed` reads the
BLAKE2b digest of those four numbers. Every sample is therefore a pure function of
(split, seed, index), each split has its own stream, and sample 10**6 costs the same as sample 0
(no generator to fast-forward, no global state).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

RANK_NAMES = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")
NAME_TO_RANK = {name: rank for rank, name in enumerate(RANK_NAMES, start=1)}
SUITS = ("S", "C", "H", "D")
SUIT_COLOURS: dict[str, tuple[str, ...]] = {
    "black": ("S", "C"),
    "red": ("H", "D"),
    "mixed": ("H", "S", "D", "C"),
}
FACE_RULES = ("as10", "as11-13")


def rank_value(rank: int, face_rule: str) -> int:
    """The number a card of `rank` (1..13) stands for under `face_rule`."""
    if face_rule == "as10":
        return min(rank, 10)
    if face_rule == "as11-13":
        return rank
    raise ValueError(f"unknown face rule {face_rule!r}; expected one of {FACE_RULES}")


def card_values(cards: Sequence[str], face_rule: str) -> tuple[int, ...]:
    """Card names -> the numbers they stand for under `face_rule`."""
    return _card_values(tuple(cards), face_rule)


@cache  # 13**4 * 2 hands at most; the verifier asks for the same hands again and again
def _card_values(cards: tuple[str, ...], face_rule: str) -> tuple[int, ...]:
    return tuple(rank_value(NAME_TO_RANK[c], face_rule) for c in cards)


@dataclass(frozen=True)
class Hand:
    """Four cards: ranks 1..13 and suits S/C/H/D, in the order they lie on the table."""

    ranks: tuple[int, ...]
    suits: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(RANK_NAMES[r - 1] for r in self.ranks)

    def values(self, face_rule: str) -> tuple[int, ...]:
        return tuple(rank_value(r, face_rule) for r in self.ranks)


def random_words(seed: int, stream: str, index: int, attempt: int) -> list[int]:
    """Sixteen 32-bit random words for one draw (modulo bias below 1e-8 for ranges <= 13)."""
    digest = hashlib.blake2b(
        f"{seed}/{stream}/{index}/{attempt}".encode(), digest_size=64
    ).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 64, 4)]


def draw_hand(
    seed: int, stream: str, index: int, attempt: int, *, force_face: bool, colours: str
) -> Hand:
    """One draw of the study's dealer (not yet checked for solvability)."""
    w = random_words(seed, stream, index, attempt)
    suits_allowed = SUIT_COLOURS[colours]
    if force_face:
        # Three free ranks plus one face card, shuffled: since the free ranks are i.i.d., a
        # shuffle is the same as putting the face card at a uniformly random position.
        ranks = [1 + w[i] % 13 for i in range(3)]
        ranks.insert(w[3] % 4, 11 + w[4] % 3)
    else:
        ranks = [1 + w[i] % 13 for i in range(4)]
    suits = tuple(suits_allowed[w[8 + i] % len(suits_allowed)] for i in range(4))
    return Hand(tuple(ranks), suits)
