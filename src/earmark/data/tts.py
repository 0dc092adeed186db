"""Text-to-speech with espeak-ng: many takes of a keyword, offline.

libespeak-ng is driven through ctypes. The PyPI package ``espeakng-loader``
bundles the library and its voice data, so no system install is needed;
another build (Debian's ``libespeak-ng1``, say) can be named explicitly.
A take is varied by voice (an accent: ``en-us``, ``en-gb-scotland``, ...),
variant (a speaker: ``m3``, ``f2``, ``whisper``, ``klatt``, ...), pitch,
pitch range and speaking rate; loudness is a gain applied by the caller.

Two properties of espeak-ng shape this module:

- it keeps all its state in process globals, so every call into it is
  serialised by one module-level lock, and one :class:`Speech` per process
  (see :func:`speech`) is the intended use;
- part of that state (pitch-flutter phase, automatic gain, breath-noise
  filters and random generators) lives in static variables that no API
  call resets, so synthesising the same word twice in one loaded library
  gives outputs that differ by a few samples. For reproducible datasets each
  synthesis therefore runs in a freshly loaded private copy of the library
  with fixed random seeds (about 3 ms per word). espeak-ng 1.52 does not
  free the selected voice on ``espeak_Terminate``, so each synthesis leaks
  about 3 KB: for hundreds of thousands of takes, synthesise in worker
  processes that are replaced now and then.

This module needs no torch.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import functools
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from earmark.errors import ConfigError, EarmarkError

#: Speaking rate limits in words per minute (espeakRATE_MINIMUM/MAXIMUM).
RATE_LIMITS = (80, 450)
#: Limits of the base pitch and of the pitch range (0 = monotone).
PITCH_LIMITS = (0, 100)

# Values from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # return an error instead of exit() on missing data
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAMETER_RATE = 1
_PARAMETER_PITCH = 3
_PARAMETER_RANGE = 4
_EVENT_LIST_TERMINATED = 0
_EVENT_SAMPLERATE = 8

_SILENCE_FLOOR_DB = -50.0  # relative to the peak: below it counts as silence
_TRIM_MARGIN_SECONDS = 0.010
_RANDOM_SEED = 1

# espeak-ng's state is global to the process: one call at a time, whatever
# the number of Speech objects or threads.
_LOCK = threading.Lock()
_SHARED: Speech | None = None


class SpeechError(EarmarkError):
    """espeak-ng cannot be loaded or failed to synthesise a text."""


class _Voice(ctypes.Structure):
    """``espeak_VOICE``: one entry of ``espeak_ListVoices``."""

    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p),
                ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p),
                ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """``espeak_EVENT``: what the synth callback receives beside the samples."""

    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short),
                                  ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class VoiceInfo:
    """A voice as espeak-ng lists it.

    ``languages`` are lower-case tags, most preferred first (``en-us``);
    ``identifier`` is the voice file (``gmw/en-US``).
    """

    name: str
    identifier: str
    languages: tuple[str, ...]

    def names(self) -> set[str]:
        """Its name, identifier and file name, lower-cased."""
        return {self.name.lower(), self.identifier.lower(),
                self.identifier.rsplit("/", 1)[-1].lower()}


class Speech:
    """espeak-ng speech synthesis: text to float32 mono audio.

    Parameters
    ----------
    library_path : str, optional
        libespeak-ng to load; defaults to the one bundled by ``espeakng-loader``.
    data_path : str, optional
        The ``espeak-ng-data`` folder that goes with it; defaults to the
        bundled one.

    Notes
    -----
    Nothing is loaded until first use. Prefer the shared instance from
    :func:`speech`: espeak-ng's state is process-wide anyway.
    """

    def __init__(self, library_path: str | None = None, data_path: str | None = None):
        self._library_path = library_path
        self._data_path = data_path
        self._catalogue: list[VoiceInfo] | None = None
        self._sample_rate: int | None = None
        self._chunks: list[np.ndarray] = []
        self._reported_rates: list[int] = []
        # Kept on the instance: ctypes callbacks must outlive every call into C.
        self._callback = _SynthCallback(self._collect)

    @property
    def sample_rate(self) -> int:
        """Rate of the synthesised audio in Hz (22050 for espeak-ng's voices)."""
        self._load_catalogue()
        return self._sample_rate

    def voices(self, language_prefix: str = "en") -> list[str]:
        """Language tags of the voices for a language, sorted.

        Parameters
        ----------
        language_prefix : str
            A language (``"en"``) or a more specific tag (``"en-gb"``); a voice
            is listed when one of its tags equals it or extends it with ``-``.
            ``""`` lists every voice.

        Returns
        -------
        list of str
            Each voice's preferred tag (``en-us``, ``en-gb-scotland``, ...),
            usable as ``voice`` in :meth:`synthesize`.
        """
        prefix = language_prefix.lower()
        return sorted({info.languages[0] for info in self._load_catalogue()
                       if info.languages and any(_extends(tag, prefix) for tag in info.languages)})

    def variants(self) -> list[str]:
        """Names of the voice variants (speakers) in the data folder, sorted.

        Variants are the files of ``espeak-ng-data/voices/!v``: ``m1``..``m8``,
        ``f1``..``f5``, ``whisper``, ``croak``, ``klatt``..., and named ones.
        """
        folder = os.path.join(self._resolved_paths()[1], "voices", "!v")
        try:
            names = os.listdir(folder)
        except OSError as error:
            raise SpeechError(f"{folder}: cannot list the espeak-ng voice variants "
                              f"({error.strerror}); is the data folder complete?") from error
        return sorted(name for name in names if os.path.isfile(os.path.join(folder, name)))

    def synthesize(self, text: str, voice: str = "en-us", variant: str | None = None,
                   rate: float = 175, pitch: float = 50, pitch_range: float = 50) -> np.ndarray:
        """Speak ``text``: float32 mono in [-1, 1] at :attr:`sample_rate`.

        Parameters
        ----------
        text : str
            What to say (UTF-8; one word or a phrase).
        voice : str
            A language tag from :meth:`voices` (``"en-us"``), or a voice's
            name or identifier as espeak-ng lists them.
        variant : str, optional
            A speaker from :meth:`variants` (``"f2"``, ``"whisper"``...),
            applied as ``voice+variant``; ``None`` keeps the voice's own.
        rate : float
            Speaking rate in words per minute, 80 to 450 (rounded to an int).
        pitch : float
            Base pitch, 0 to 100; 50 is the voice's normal pitch.
        pitch_range : float
            Intonation range, 0 (monotone) to 100; 50 is normal.

        Returns
        -------
        numpy.ndarray
            Float32 samples with leading and trailing silence trimmed (10 ms
            margins kept). The same arguments always give the same samples.

        Raises
        ------
        ConfigError
            Empty text, unknown voice or variant, a parameter out of range.
        SpeechError
            The library cannot be loaded, or produced no sound for the text.
        """
        encoded = _check_text(text)
        spec = self._voice_spec(voice, variant)
        settings = ((_PARAMETER_RATE, _check_range("rate", rate, RATE_LIMITS)),
                    (_PARAMETER_PITCH, _check_range("pitch", pitch, PITCH_LIMITS)),
                    (_PARAMETER_RANGE, _check_range("pitch_range", pitch_range, PITCH_LIMITS)))
        with _LOCK:
            samples = self._run_synthesis(encoded, spec, settings)
        audio = trim_silence(samples.astype(np.float32) / 32768.0, self.sample_rate)
        if audio.size == 0:
            raise SpeechError(f"espeak-ng produced no sound for {text!r} with voice "
                              f"{spec!r}; give text with pronounceable words.")
        return audio

    def phonemes(self, texts: list[str], voice: str = "en-us") -> list[str]:
        """How ``voice`` would pronounce each text, as espeak-ng phoneme mnemonics.

        Words are separated by spaces, stress marked with ``'`` and ``,``;
        a word the voice's language cannot say is switched to another
        language, which shows as a ``(code)`` marker (see
        :func:`foreign_words`). One library load serves every text.

        Raises
        ------
        ConfigError
            An empty text or an unknown voice.
        """
        encoded = [_check_text(text) for text in texts]
        spec = self._voice_spec(voice, None)
        with _LOCK, self._engine() as library:
            if library.espeak_SetVoiceByName(spec.encode()) != 0:
                raise SpeechError(f"espeak-ng could not select voice {spec!r}.")
            return [_text_to_phonemes(library, text) for text in encoded]

    # -- synthesis ---------------------------------------------------------

    def _run_synthesis(self, encoded: bytes, spec: str,
                       settings: tuple[tuple[int, int], ...]) -> np.ndarray:
        """Synthesise in a fresh library; the caller holds the lock."""
        self._chunks, self._reported_rates = [], []
        with self._engine() as library:
            if library.espeak_SetVoiceByName(spec.encode()) != 0:
                raise SpeechError(f"espeak-ng could not select voice {spec!r}.")
            for parameter, value in settings:
                library.espeak_SetParameter(parameter, value, 0)
            _seed_random_generators(library)
            status = library.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0,
                                          _CHARS_UTF8, None, None)
        if status != 0:
            raise SpeechError(f"espeak-ng failed to synthesise with voice {spec!r} "
                              f"(espeak_Synth returned {status}).")
        if any(rate != self._sample_rate for rate in self._reported_rates):
            raise SpeechError(f"voice {spec!r} speaks at {self._reported_rates[-1]} Hz, not "
                              f"{self._sample_rate} Hz; choose another voice.")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)

    def _collect(self, samples, count, events) -> int:
        """Synth callback: keep the int16 samples; 0 tells espeak to go on."""
        if samples and count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, (count,)).copy())
        index = 0
        while events and events[index].type != _EVENT_LIST_TERMINATED:
            if events[index].type == _EVENT_SAMPLERATE:
                self._reported_rates.append(events[index].id.number)
            index += 1
        return 0

    @contextmanager
    def _engine(self) -> Iterator[ctypes.CDLL]:
        """A freshly loaded, initialised libespeak-ng, unloaded afterwards.

        Loading afresh resets the static synthesis state no API call reaches,
        which is what makes repeated syntheses identical. The caller holds
        the lock.
        """
        library_path, data_path = self._resolved_paths()
        if not os.path.isfile(os.path.join(data_path, "phontab")):
            # Checked here: given a wrong folder, espeak-ng silently falls back
            # to the path compiled into it, and fails with a confusing message.
            raise SpeechError(f"{data_path}: not an espeak-ng-data folder (no 'phontab' "
                              "in it); `pip install espeakng-loader` provides one, or pass "
                              "data_path.")
        library = _load_library(_private_copy(library_path))
        rate = library.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(),
                                         _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            _unload_library(library)
            raise SpeechError(f"{data_path}: espeak-ng could not initialise from this data "
                              "folder; reinstall it with `pip install --force-reinstall "
                              "espeakng-loader` or pass data_path.")
        self._sample_rate = rate
        try:
            library.espeak_SetSynthCallback(self._callback)
            yield library
        finally:
            library.espeak_Terminate()
            _unload_library(library)

    # -- voices ------------------------------------------------------------

    def _load_catalogue(self) -> list[VoiceInfo]:
        """List the voices once (this also learns the sample rate)."""
        if self._catalogue is None:
            with _LOCK:
                if self._catalogue is None:  # another thread may have listed them
                    with self._engine() as library:
                        self._catalogue = _list_voices(library)
        return self._catalogue

    def _voice_spec(self, voice: str, variant: str | None) -> str:
        """The voice file's identifier, ``+variant`` when one is given.

        espeak_SetVoiceByName matches names and file names only, not
        language tags ("en-gb" fails), so the voice is resolved here.
        """
        if isinstance(voice, str) and "+" in voice:
            raise ConfigError(f"voice {voice!r}: give the variant separately, as "
                              f"voice={voice.split('+')[0]!r}, variant={voice.split('+', 1)[1]!r}.")
        spec = self._find_voice(voice).identifier
        if variant is None:
            return spec
        available = self.variants()
        if variant not in available:
            raise ConfigError(f"unknown espeak-ng voice variant {variant!r}; there are "
                              f"{len(available)}, e.g. {', '.join(_variant_examples(available))} "
                              "(Speech.variants() lists them all).")
        return f"{spec}+{variant}"

    def _find_voice(self, voice: str) -> VoiceInfo:
        """By name or file first, then by preferred language tag, then any tag."""
        key = voice.lower() if isinstance(voice, str) else None
        catalogue = self._load_catalogue()
        for matches in (lambda info: key in info.names(),
                        lambda info: info.languages[:1] == (key,),
                        lambda info: key in info.languages):
            found = [info for info in catalogue if matches(info)]
            if found:
                return found[0]
        raise ConfigError(f"unknown espeak-ng voice {voice!r}; English ones are "
                          f"{', '.join(self.voices('en'))} (Speech.voices(prefix) lists "
                          "them for any language).")

    def _resolved_paths(self) -> tuple[str, str]:
        """The library and data folder: the given ones or espeakng-loader's."""
        if self._library_path is not None and self._data_path is not None:
            return self._library_path, self._data_path
        try:
            import espeakng_loader
        except ImportError as error:
            raise SpeechError("espeak-ng is not available: `pip install espeakng-loader` "
                              "provides libespeak-ng and its voice data (or pass "
                              "library_path and data_path).") from error
        return (self._library_path or espeakng_loader.get_library_path(),
                self._data_path or espeakng_loader.get_data_path())


def speech() -> Speech:
    """The process-wide :class:`Speech`, using espeakng-loader's library."""
    global _SHARED
    with _LOCK:
        if _SHARED is None:
            _SHARED = Speech()
        return _SHARED


# -- library loading -------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _private_copy(library_path: str) -> str:
    """Copy the library to a temporary folder, once per process.

    Another package (a phonemizer, say) may hold the same file loaded; a
    private copy keeps our state apart from theirs and lets unloading it
    really unload it.
    """
    if not os.path.isfile(library_path):
        raise SpeechError(f"{library_path}: no espeak-ng library there; `pip install "
                          "espeakng-loader` provides one (or pass library_path).")
    folder = tempfile.mkdtemp(prefix="earmark-espeak-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    copy = os.path.join(folder, os.path.basename(library_path))
    shutil.copyfile(library_path, copy)
    return copy


def _load_library(path: str) -> ctypes.CDLL:
    """dlopen libespeak-ng and declare the signatures used here."""
    try:
        library = ctypes.CDLL(path)
    except OSError as error:
        raise SpeechError(f"{path}: cannot load libespeak-ng ({error}); `pip install "
                          "espeakng-loader` provides a working one.") from error
    library.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    library.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    library.espeak_SetSynthCallback.restype = None
    library.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    library.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    library.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    library.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]
    library.espeak_TextToPhonemes.restype = ctypes.c_char_p
    library.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    library.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
    return library


def _unload_library(library: ctypes.CDLL) -> None:
    """dlclose it, so the next load starts from the file's pristine globals."""
    import _ctypes

    close = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary")
    close(library._handle)


def _seed_random_generators(library: ctypes.CDLL) -> None:
    """Fix the noise generators: espeak's own and libc's ``rand``.

    Breathy and whispered variants draw noise from both, so without this
    two takes of a whisper differ.
    """
    if hasattr(library, "espeak_ng_SetRandSeed"):  # espeak-ng >= 1.51
        library.espeak_ng_SetRandSeed(ctypes.c_long(_RANDOM_SEED))
    libc = _libc()
    if libc is not None:
        libc.srand(_RANDOM_SEED)


@functools.lru_cache(maxsize=None)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


def _text_to_phonemes(library: ctypes.CDLL, text: bytes) -> str:
    """Every clause of ``text`` through ``espeak_TextToPhonemes``, joined by spaces."""
    buffer = ctypes.create_string_buffer(text)
    pointer = ctypes.c_char_p(ctypes.addressof(buffer))
    clauses = []
    while pointer.value:
        # textmode 1 = UTF-8; phonememode 0 = ASCII mnemonics. The call moves the pointer
        # past the clause it read, or sets it to NULL at the end.
        clause = library.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, 0)
        if clause:
            clauses.append(clause.decode("utf-8", "replace").strip())
    return " ".join(part for part in clauses if part)


def foreign_words(phonemes: str) -> list[str]:
    """The language switches in a :meth:`Speech.phonemes` string (``["zh"]``, ...)."""
    import re

    return re.findall(r"\(([a-z-]+)\)", phonemes)


def _list_voices(library: ctypes.CDLL) -> list[VoiceInfo]:
    """Copy ``espeak_ListVoices`` into Python before the library goes away."""
    table = library.espeak_ListVoices(None)
    voices = []
    index = 0
    while table[index]:
        entry = table[index].contents
        voices.append(VoiceInfo(entry.name.decode("utf-8", "replace"),
                                entry.identifier.decode("utf-8", "replace"),
                                _language_tags(entry.languages)))
        index += 1
    return voices


def _language_tags(address: int | None) -> tuple[str, ...]:
    """Decode espeak's language list: (priority byte, NUL-ended tag)*, then 0."""
    tags = []
    while address and ctypes.c_ubyte.from_address(address).value != 0:
        tag = ctypes.string_at(address + 1)
        tags.append(tag.decode("utf-8", "replace").lower())
        address += len(tag) + 2  # priority byte + tag + NUL
    return tuple(tags)


# -- checks and post-processing -------------------------------------------

def _check_text(text: str) -> bytes:
    if not isinstance(text, str):
        raise ConfigError(f"text must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ConfigError("text is empty; give the word or phrase to speak.")
    if "\0" in text:
        raise ConfigError(f"text {text!r} holds a NUL character; remove it.")
    return text.encode("utf-8")


def _check_range(name: str, value: float, limits: tuple[int, int]) -> int:
    low, high = limits
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{name}={value} is out of range; espeak-ng accepts {low} to {high}.")
    return int(round(value))


def _extends(tag: str, prefix: str) -> bool:
    return not prefix or tag == prefix or tag.startswith(prefix + "-")


def _variant_examples(available: list[str]) -> list[str]:
    """A few well-known variants first, to make the error message useful."""
    preferred = [name for name in ("m1", "m3", "f1", "f2", "whisper", "croak", "klatt")
                 if name in available]
    return preferred or available[:6]


def trim_silence(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Cut leading and trailing samples below -50 dB re the peak, keeping 10 ms.

    espeak-ng often starts a word at its very first sample, so the margins
    are padded with zeros where the output has none: every take then has
    the same quiet lead-in and tail. Returns an empty array when everything
    is silent.
    """
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak == 0.0:
        return audio[:0]
    margin = int(round(_TRIM_MARGIN_SECONDS * sample_rate))
    audio = np.pad(audio, margin)
    loud = np.flatnonzero(np.abs(audio) > peak * 10 ** (_SILENCE_FLOOR_DB / 20))
    return np.ascontiguousarray(audio[loud[0] - margin: loud[-1] + 1 + margin])
