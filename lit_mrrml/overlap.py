"""Text overlap: near-duplicate prompts and contamination with evaluation sets.

Texts are normalised (Unicode NFKC, case-folded, punctuation to spaces, whitespace collapsed) and
cut into word n-grams ("shingles"). Two measures:

- Jaccard similarity |A & B| / |A | B|: near-duplicates among generated prompts;
- containment |A & B| / |A| of a query A in a reference B: a generated prompt that reuses an
  evaluation conversation (a short question lifted out of a long HealthBench row scores high).

``OverlapIndex`` finds the best match with an inverted index: candidates come from the query's
rarer shingles (a common phrase such as "i have been" would otherwise pull in every document),
then each candidate is scored exactly on its full shingle set. ``OverlapFilter`` adds a threshold;
``ContaminationGuard`` builds one from evaluation files, for generated data and policy prompts alike.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lit_mrrml.paths import resolve_path
from lit_mrrml.textio import read_lines

Metric = Literal["jaccard", "containment"]
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
CANDIDATE_BUDGET = 4096  # postings read per query, beyond the rarest shingles
RAREST = 4  # shingles whose postings are always read


def normalize(text: str) -> str:
    """Case-folded words of ``text`` separated by single spaces, punctuation removed."""
    return " ".join(_NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def shingles(text: str, n: int = 3) -> frozenset[int]:
    """Hashed word n-grams of the normalised text (one shingle of all words when shorter than n)."""
    words = normalize(text).split()
    grams = [" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))] if words else []
    return frozenset(int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") for g in grams)


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def containment(a: frozenset[int], b: frozenset[int]) -> float:
    """The share of ``a``'s shingles that are also in ``b``."""
    return len(a & b) / len(a) if a else 0.0


@dataclass(frozen=True)
class Match:
    """The closest indexed text: its key and its score under the index's metric."""

    key: str
    score: float


class OverlapIndex:
    """Texts by key, searchable for the one that overlaps a query the most."""

    def __init__(self, ngram: int = 3, metric: Metric = "jaccard") -> None:
        if ngram < 1:
            raise ValueError(f"ngram must be at least 1, got {ngram}")
        self.ngram, self.metric = ngram, metric
        self.keys: list[str] = []
        self.sets: list[frozenset[int]] = []
        self.postings: dict[int, list[int]] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, key: str, text: str) -> None:
        grams = shingles(text, self.ngram)
        doc = len(self.keys)
        self.keys.append(key)
        self.sets.append(grams)
        for gram in grams:
            self.postings.setdefault(gram, []).append(doc)

    def best(self, text: str) -> Match | None:
        """The indexed text with the highest score against ``text`` (None when nothing overlaps)."""
        query = shingles(text, self.ngram)
        by_rarity = sorted((g for g in query if g in self.postings), key=lambda g: len(self.postings[g]))
        candidates: set[int] = set()
        read = 0
        for rank, gram in enumerate(by_rarity):
            posting = self.postings[gram]
            if rank >= RAREST and read + len(posting) > CANDIDATE_BUDGET:
                break
            candidates.update(posting)
            read += len(posting)
        score = jaccard if self.metric == "jaccard" else containment
        scored = ((score(query, self.sets[doc]), -doc) for doc in candidates)
        best = max(scored, default=None)
        return None if best is None else Match(self.keys[-best[1]], best[0])


class OverlapFilter:
    """Flags a text whose best match reaches ``threshold``; ``add`` keeps accepted texts for later checks."""

    def __init__(self, threshold: float, ngram: int = 3, metric: Metric = "jaccard") -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.index = OverlapIndex(ngram, metric)

    def __len__(self) -> int:
        return len(self.index)

    def check(self, text: str) -> Match | None:
        """The match that makes ``text`` a duplicate, or None when it is new enough."""
        match = self.index.best(text)
        return match if match is not None and match.score >= self.threshold else None

    def add(self, key: str, text: str) -> None:
        self.index.add(key, text)


class ContaminationGuard(OverlapFilter):
    """Flags prompts that overlap an evaluation set (containment of the prompt in an evaluation item)."""

    def __init__(self, references: Iterable[tuple[str, str]], threshold: float = 0.5, ngram: int = 5) -> None:
        super().__init__(threshold, ngram, "containment")
        for key, text in references:
            self.add(key, text)

    @classmethod
    def from_files(cls, paths: Sequence[str], threshold: float = 0.5, ngram: int = 5) -> ContaminationGuard:
        """Guard against the prompts of these files (see ``read_reference_prompts``)."""
        return cls(read_reference_prompts(paths), threshold, ngram)


def prompt_text(messages: Sequence[Mapping[str, str]] | str) -> str:
    """The text of a prompt that overlap is measured on: its user turns, joined."""
    if isinstance(messages, str):
        return messages
    return "\n".join(m["content"] for m in messages if m.get("role") == "user")


def read_reference_prompts(paths: Sequence[str]) -> list[tuple[str, str]]:
    """(key, text) of every prompt in these files.

    JSONL lines with a ``prompt`` (a message list, as in HealthBench rows and ranked units, or a
    string) or a ``text`` field; ``.txt`` files give one prompt a line. ``package:<module>/<path>``
    names a file inside an installed package. Keys are ``<file name>:<prompt_id, id or line>``.
    """
    out: list[tuple[str, str]] = []
    for given in paths:
        path = Path(resolve_path(given))
        if not path.is_file():
            raise FileNotFoundError(f"evaluation file not found: {given}")
        out += [_reference(path, number, line) for number, line in read_lines(path) if line.strip()]
    return out


def _reference(path: Path, number: int, line: str) -> tuple[str, str]:
    if path.suffix == ".txt":
        return f"{path.name}:{number}", line.strip()
    try:
        record: Any = json.loads(line)
        text = prompt_text(record["prompt"]) if "prompt" in record else str(record["text"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}:{number}: not a prompt record ({type(err).__name__}: {err})") from None
    return f"{path.name}:{record.get('prompt_id') or record.get('id') or number}", text


def screen_prompt(
    key: str, text: str, contamination: OverlapFilter | None = None, duplicates: OverlapFilter | None = None
) -> tuple[str, Match] | None:
    """Why a prompt must go (``contamination`` or ``near_duplicate``, with the match), or None.

    A prompt that passes joins ``duplicates``, so that later prompts are checked against it.
    """
    for reason, guard in (("contamination", contamination), ("near_duplicate", duplicates)):
        match = guard.check(text) if guard is not None else None
        if match is not None:
            return reason, match
    if duplicates is not None:
        duplicates.add(key, text)
    return None
