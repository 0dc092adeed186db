"""A wake phrase, checked, and the hard negatives made from it.

A detector trained only on the phrase against unrelated speech learns to
fire on anything that shares a syllable with it. The negatives that teach
it otherwise are made from the phrase itself:

- its **parts**: each word, and each run of words shorter than the phrase
  ("view", "glass" for "view glass"); for a one-word phrase, common words
  it starts or ends with ("snow", "boy" for "snowboy");
- **sound-alikes**: the phrase with one word replaced by a common word
  whose espeak-ng pronunciation is closest to it ("few glass", "view
  class"), and common words that sound like a one-word phrase;
- **sentences** that carry a part or a sound-alike among other words
  ("I like the view from here").

Pronunciations come from espeak-ng (:meth:`earmark.data.tts.Speech.phonemes`),
the common words from ``wordfreq`` (the ``wakeword`` extra).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from earmark.errors import ConfigError

#: Longest phrase accepted, in words and characters.
MAX_WORDS = 5
MAX_CHARACTERS = 48
#: The script espeak-ng reads for a language; languages not listed read Latin.
SCRIPTS = {"ru": "CYRILLIC", "uk": "CYRILLIC", "bg": "CYRILLIC", "sr": "CYRILLIC",
           "mk": "CYRILLIC", "be": "CYRILLIC", "kk": "CYRILLIC", "ky": "CYRILLIC",
           "el": "GREEK", "grc": "GREEK", "ar": "ARABIC", "fa": "ARABIC", "ur": "ARABIC",
           "he": "HEBREW", "hi": "DEVANAGARI", "mr": "DEVANAGARI", "ne": "DEVANAGARI",
           "ka": "GEORGIAN", "hy": "ARMENIAN", "th": "THAI", "ko": "HANGUL",
           "cmn": "CJK", "yue": "CJK", "zh": "CJK", "ja": "CJK"}
#: Sentences that carry a word or a phrase among other words.
CARRIERS = ("I like the {} from here", "did you say {} or not", "the {} was on the table",
            "we talked about {} all evening", "can you turn the {} down please",
            "my friend said {} yesterday", "there is a {} in the kitchen",
            "{} is not what I meant", "look at the {} over there",
            "she wrote {} on the board")
#: Common words looked at for sound-alikes.
VOCABULARY_SIZE = 20000


@dataclass(frozen=True)
class Phrase:
    """A checked wake phrase: the text spoken and the label it trains under."""

    text: str
    language: str = "en"

    @property
    def words(self) -> list[str]:
        return self.text.split()

    @property
    def label(self) -> str:
        """``view_glass`` for "view glass": a file- and CSV-safe class name."""
        return re.sub(r"\W+", "_", self.text).strip("_")


def check_phrase(text: str, language: str = "en") -> Phrase:
    """The phrase, lower-cased with single spaces, or a ConfigError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError("the wake phrase is empty; give the words to wake on, e.g. "
                          "earmark wakeword \"view glass\"")
    clean = " ".join(text.lower().split())
    if len(clean) > MAX_CHARACTERS or len(clean.split()) > MAX_WORDS:
        raise ConfigError(f"wake phrase {text!r} is too long: give at most {MAX_WORDS} words "
                          f"and {MAX_CHARACTERS} characters (2-4 syllables or more work best)")
    odd = sorted({c for c in clean if not (c.isalpha() or c in " '-")})
    if odd:
        raise ConfigError(f"wake phrase {text!r} holds {''.join(odd)!r}: write it in words "
                          "(letters, spaces, apostrophes and hyphens), e.g. 'two' for '2'")
    if not any(c.isalpha() for c in clean):
        raise ConfigError(f"wake phrase {text!r} has no letters: give the words to wake on, "
                          "e.g. earmark wakeword \"view glass\"")
    expected = SCRIPTS.get(language.split("-")[0].lower(), "LATIN")
    foreign = sorted({c for c in clean if c.isalpha() and _script(c) != expected})
    if foreign:
        raise ConfigError(f"wake phrase {text!r}: espeak-ng cannot speak {''.join(foreign)!r} "
                          f"in language {language!r}, which it reads in {expected} script; "
                          "write the phrase in that script or choose its language with "
                          "--language")
    return Phrase(clean, language)


def _script(character: str) -> str:
    name = unicodedata.name(character, "")
    return "CJK" if name.startswith(("CJK", "HIRAGANA", "KATAKANA")) else name.split(" ")[0]


def phrase_parts(phrase: Phrase, vocabulary: list[str]) -> list[str]:
    """Each run of words shorter than the phrase; for one word, common words inside it."""
    words = phrase.words
    parts = [" ".join(words[i:j]) for i in range(len(words))
             for j in range(i + 1, len(words) + 1) if j - i < len(words)]
    if len(words) == 1:
        word = words[0]
        parts = [w for w in vocabulary if len(w) >= 3 and w != word
                 and (word.startswith(w) or word.endswith(w))]
    return list(dict.fromkeys(parts))


def sound_alikes(phrase: Phrase, vocabulary: list[str], pronounce, count: int = 12) -> list[str]:
    """Phrases one word away that sound closest to it (nearest pronunciations first).

    ``pronounce`` maps a list of texts to their phoneme strings (espeak-ng's).
    """
    words = phrase.words
    candidates = [w for w in vocabulary if w not in words]
    spoken = [_plain(p) for p in pronounce(words + candidates)]
    own, theirs = spoken[:len(words)], spoken[len(words):]
    scored = []
    for position, word_sound in enumerate(own):
        distances = np.array([edit_distance(word_sound, other) for other in theirs])
        for index in np.argsort(distances, kind="stable")[:count]:
            if distances[index] == 0:
                continue                        # a homophone would be the phrase itself
            replaced = words[:position] + [candidates[index]] + words[position + 1:]
            scored.append((distances[index] / max(len(word_sound), 1), " ".join(replaced)))
    scored.sort()
    return list(dict.fromkeys(text for _, text in scored))[:count]


def carrier_sentences(texts: list[str], rng: np.random.Generator, per_text: int = 2) -> list[str]:
    """Each text inside ``per_text`` sentences drawn from :data:`CARRIERS`."""
    sentences = []
    for text in texts:
        for index in rng.choice(len(CARRIERS), size=min(per_text, len(CARRIERS)),
                                replace=False):
            sentences.append(CARRIERS[index].format(text))
    return sentences


def common_words(language: str = "en", size: int = VOCABULARY_SIZE) -> list[str]:
    """The most frequent plain words of a language (``wordfreq``)."""
    try:
        import wordfreq
    except ImportError as error:
        raise ConfigError("hard negatives need wordfreq: pip install 'earmark[wakeword]'") \
            from error
    try:
        words = wordfreq.top_n_list(language.split("-")[0], size)
    except LookupError as error:
        raise ConfigError(f"wordfreq has no word list for language {language!r}") from error
    return [w for w in words if w.isalpha() and len(w) > 1]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings (insert, delete, substitute: 1 each)."""
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (char_a != char_b)))
        previous = current
    return previous[-1]


def _plain(phonemes: str) -> str:
    """Phonemes without stress marks and word breaks."""
    return re.sub(r"[',\s#_:]", "", phonemes)
