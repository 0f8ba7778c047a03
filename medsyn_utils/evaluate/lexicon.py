"""Russian words for the symptom matcher: tokens (razdel), lemmas (pymorphy3), stems, cues.

The word lists (negation cues, scope, stop words, suffixes) are data in ``negation.yaml``.
"""

from __future__ import annotations

from rapidfuzz import fuzz

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

WORD = re.compile(r"[а-яёa-z0-9]", re.IGNORECASE)


@dataclass(frozen=True)
class Token:
    """One word or punctuation mark of a note: its characters, lemma and stem."""

    start: int
    stop: int
    text: str  # lower case, ё as е
    lemma: str
    stem: str
    sentence: int


@dataclass(frozen=True)
class Lexicon:
    """The word lists of ``negation.yaml``, ready to use."""

    pre_cues: tuple[tuple[str, ...], ...]
    post_cues: tuple[tuple[str, ...], ...]
    pre_scope: int
    post_scope: int
    terminators: frozenset[str]
    post_terminators: frozenset[str]
    stopwords: frozenset[str]
    suffixes: tuple[str, ...]
    min_stem: int


def _cues(values: list[Any]) -> tuple[tuple[str, ...], ...]:
    cues = {tuple(normal(str(v)).split()) for v in values if str(v).strip()}
    return tuple(sorted(cues, key=lambda c: (-len(c), c)))


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    """The packaged word lists (read once)."""
    text = resources.files("medsyn_utils.evaluate").joinpath("negation.yaml").read_text("utf-8")
    raw = yaml.safe_load(text)
    return Lexicon(
        pre_cues=_cues(raw["pre_cues"]), post_cues=_cues(raw["post_cues"]),
        pre_scope=int(raw["pre_scope"]), post_scope=int(raw["post_scope"]),
        terminators=frozenset(normal(str(t)) for t in raw["terminators"]),
        post_terminators=frozenset(normal(str(t)) for t in raw.get("post_terminators", [])),
        stopwords=frozenset(normal(str(t)) for t in raw["stopwords"]),
        suffixes=tuple(sorted((normal(str(s)) for s in raw["suffixes"]), key=len, reverse=True)),
        min_stem=int(raw["min_stem"]))


def normal(text: str) -> str:
    return text.lower().replace("ё", "е").strip()


@lru_cache(maxsize=1)
def _morph():
    import pymorphy3  # loads its dictionaries once (about 0.3 s)
    return pymorphy3.MorphAnalyzer(lang="ru")


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str:
    """The most likely lemma of a lower-case word (the word itself when not Cyrillic)."""
    if not re.search("[а-я]", word):
        return word
    return normal(_morph().parse(word)[0].normal_form)


@lru_cache(maxsize=200_000)
def is_adjective(word: str) -> bool:
    parsed = _morph().parse(normal(word))
    return bool(parsed) and parsed[0].tag.POS in ("ADJF", "ADJS", "PRTF", "PRTS")


@lru_cache(maxsize=200_000)
def stem(word_lemma: str) -> str:
    """The lemma without one derivational/inflectional ending (``сухость``, ``сухой`` → ``сух``)."""
    lex = lexicon()
    for suffix in lex.suffixes:
        if word_lemma.endswith(suffix) and len(word_lemma) - len(suffix) >= lex.min_stem:
            return word_lemma[: -len(suffix)]
    return word_lemma


def tokens(text: str) -> list[Token]:
    """Words and punctuation of ``text`` with character offsets, lemmas, stems and sentences."""
    from razdel import sentenize, tokenize

    found: list[Token] = []
    for number, sentence in enumerate(sentenize(text)):
        for piece in tokenize(sentence.text):
            word = normal(piece.text)
            base = lemma(word) if WORD.search(word) else word
            found.append(Token(sentence.start + piece.start, sentence.start + piece.stop, word,
                               base, stem(base) if WORD.search(word) else word, number))
    return found


def is_word(token: Token) -> bool:
    return bool(WORD.search(token.text))


def content_words(phrase: str) -> tuple[str, ...]:
    """Stems of the words of a symptom name that carry its meaning (stop words dropped)."""
    lex = lexicon()
    stems = []
    for token in tokens(phrase):
        if not is_word(token) or token.text in lex.stopwords or token.lemma in lex.stopwords:
            continue
        if token.stem not in stems:
            stems.append(token.stem)
    return tuple(stems)


SPELLING_RATIO = 88.0  # rapidfuzz ratio for a spelling variant of a word of 5+ letters


@lru_cache(maxsize=500_000)
def similar_stem(key: str, stem: str, fuzzy: float) -> bool:
    """The same word: equal stems, one a prefix of the other (4+ letters), or a spelling variant
    (rapidfuzz ratio ≥ ``fuzzy`` for words of 5+ letters; 100 turns that off)."""
    if key == stem:
        return True
    short, long_ = sorted((key, stem), key=len)
    if len(short) >= 4 and len(long_) - len(short) <= 3 and long_.startswith(short):
        return True
    return fuzzy < 100 and min(len(key), len(stem)) >= 5 and fuzz.ratio(key, stem) >= fuzzy
