"""Protocol sample sets: which raw samples a benchmark uses and with which class label.

Each protocol maps a :class:`~glfnet.data.readers.RawSample` to a class name or to an
exclusion with its reason (never a silent drop). Rules (reference section 2):

``megc2019``  the MEGC2019 composite ("CDE"), classes negative, positive, surprise.
    CASME II (2014 coding file): disgust + repression -> negative, happiness -> positive,
    surprise -> surprise; sadness, fear, others excluded; also drop sub04/EP12_01f (apex "/")
    and sub05/EP09_05f (apex = onset). 145 samples, 88/32/25, 24 subjects.
    SAMM: every micro row except Estimated Emotion "Other" (subject 025 vanishes);
    anger/contempt/disgust/fear/sadness -> negative, happiness -> positive, surprise ->
    surprise. 133 samples, 92/26/15, 28 subjects.
    SMIC-HS: the original HS micro clips, label from the folder. 164 samples, 70/51/43,
    16 subjects. In all 442 samples, 68 subjects, 250/109/83.
``casme2-5``  CASME II: happiness, disgust, repression, surprise, others (sadness and fear
    excluded; 246 samples from the 2014 sheet).
``samm-5``    SAMM micro rows: anger, contempt, happiness, surprise, other (disgust, fear,
    sadness excluded; 136 samples).
``smic-3``    SMIC-HS (folder label) or SMIC-E (Emotion column): negative, positive, surprise.
``all``       any database: every annotated sample, the class is its emotion as written
    (lower case); classes sorted by name.

The apex is never part of a rule except for the two CASME II samples the composite's own
list drops.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from glfnet.data.naming import MEGC_CLASSES
from glfnet.data.readers.base import RawSample
from glfnet.data.readers.samm import is_micro
from glfnet.errors import ConfigError

Rule = Callable[[RawSample], "tuple[str | None, str]"]

# The composite's own list leaves out these two CASME II samples.
MEGC_CASME2_DROPPED = {
    "sub04_EP12_01f": "apex '/' in the coding sheet",
    "sub05_EP09_05f": "apex equals onset in the coding sheet",
}
_MEGC_CASME2 = {
    "disgust": "negative",
    "repression": "negative",
    "happiness": "positive",
    "surprise": "surprise",
}
_MEGC_SAMM = {
    "anger": "negative",
    "contempt": "negative",
    "disgust": "negative",
    "fear": "negative",
    "sadness": "negative",
    "happiness": "positive",
    "surprise": "surprise",
}
_ALIASES = {
    "other": "others",
    "happy": "happiness",
    "surprised": "surprise",
    "angry": "anger",
    "sad": "sadness",
    "disgusted": "disgust",
}


def emotion_key(emotion: str) -> str:
    """``" Happiness "`` -> ``happiness``; ``other`` -> ``others``; ``happy`` -> ``happiness``."""
    e = str(emotion).strip().lower()
    return _ALIASES.get(e, e)


@dataclass(frozen=True)
class Protocol:
    name: str
    databases: tuple[str, ...]
    classes: tuple[str, ...]  # empty: taken from the data (sorted), see ``all``
    rule: Rule
    description: str
    expected: dict[str, dict[str, int]] = field(default_factory=dict)  # complete databases
    expected_subjects: dict[str, int] = field(default_factory=dict)

    def label(self, s: RawSample) -> tuple[str | None, str]:
        """(class name, "") or (None, reason for the exclusion)."""
        if s.database not in self.databases:
            return None, f"{s.database} is not part of {self.name}"
        if not s.annotated:
            return None, "clip folder has no row in the annotation sheet"
        return self.rule(s)

    def select(self, samples) -> Selection:
        included, excluded = [], []
        for s in samples:
            label, reason = self.label(s)
            (included.append((s, label)) if label is not None else excluded.append((s, reason)))
        classes = self.classes or tuple(sorted({lab for _, lab in included}))
        return Selection(self, list(classes), included, excluded)


@dataclass
class Selection:
    """A protocol applied to samples: ``included`` (sample, label) and ``excluded``
    (sample, reason)."""

    protocol: Protocol
    classes: list[str]
    included: list[tuple[RawSample, str]]
    excluded: list[tuple[RawSample, str]]

    def counts(self) -> dict[str, Counter]:
        """{database: Counter(class -> n)} over the included samples."""
        out: dict[str, Counter] = {}
        for s, lab in self.included:
            out.setdefault(s.database, Counter())[lab] += 1
        return out


# ---------------------------------------------------------------------------- rules


def _not_in(s: RawSample, where: str) -> str:
    return f"emotion {s.emotion or '(blank)'!r} is not in {where}"


def _not_micro(s: RawSample) -> str | None:
    """Why a SAMM row is not a micro-expression, or None."""
    if is_micro(s.extra.get("micro", "")):
        return None
    return f"not a micro-expression (Micro column: {s.extra.get('micro')!r})"


def _megc2019(s: RawSample) -> tuple[str | None, str]:
    e = emotion_key(s.emotion)
    if s.database == "casme2":
        if s.sample_id in MEGC_CASME2_DROPPED:
            return None, f"not in the megc2019 list ({MEGC_CASME2_DROPPED[s.sample_id]})"
        lab = _MEGC_CASME2.get(e)
        return (lab, "") if lab else (None, _not_in(s, "megc2019"))
    if s.database == "samm":
        if why := _not_micro(s):
            return None, why
        lab = _MEGC_SAMM.get(e)
        return (lab, "") if lab else (None, _not_in(s, "megc2019"))
    if s.database == "smic":
        return (e, "") if e in MEGC_CLASSES else (None, f"folder label {e!r} is not in megc2019")
    return None, f"{s.database} is not part of megc2019"


def _fixed(classes: tuple[str, ...], micro_only: bool = False) -> Rule:
    def rule(s: RawSample):
        if micro_only and (why := _not_micro(s)):
            return None, why
        e = emotion_key(s.emotion)
        if s.database == "samm" and e == "others":
            e = "other"
        return (e, "") if e in classes else (None, _not_in(s, ", ".join(classes)))

    return rule


def _all(s: RawSample):
    e = emotion_key(s.emotion)
    return (e, "") if e else (None, "no emotion in the annotation")


CASME2_5 = ("happiness", "disgust", "repression", "surprise", "others")
SAMM_5 = ("anger", "contempt", "happiness", "surprise", "other")

PROTOCOLS: dict[str, Protocol] = {
    "megc2019": Protocol(
        "megc2019",
        ("casme2", "samm", "smic"),
        MEGC_CLASSES,
        _megc2019,
        "MEGC2019 composite: CASME II + SAMM + SMIC-HS, negative/positive/surprise "
        "(442 samples, 68 subjects, 250/109/83)",
        expected={
            "casme2": {"negative": 88, "positive": 32, "surprise": 25},
            "samm": {"negative": 92, "positive": 26, "surprise": 15},
            "smic": {"negative": 70, "positive": 51, "surprise": 43},
        },
        expected_subjects={"casme2": 24, "samm": 28, "smic": 16},
    ),
    "casme2-5": Protocol(
        "casme2-5",
        ("casme2",),
        CASME2_5,
        _fixed(CASME2_5),
        "CASME II, 5 classes: happiness, disgust, repression, surprise, others",
        expected={"casme2": {"happiness": 32, "disgust": 63, "repression": 27, "surprise": 25, "others": 99}},
    ),
    "samm-5": Protocol(
        "samm-5",
        ("samm",),
        SAMM_5,
        _fixed(SAMM_5, micro_only=True),
        "SAMM micro-expressions, 5 classes: anger, contempt, happiness, surprise, other",
        expected={"samm": {"anger": 57, "contempt": 12, "happiness": 26, "surprise": 15, "other": 26}},
    ),
    "smic-3": Protocol(
        "smic-3",
        ("smic", "smic-e"),
        MEGC_CLASSES,
        _fixed(MEGC_CLASSES),
        "SMIC-HS (folder label) or SMIC-E (Emotion column): negative, positive, surprise",
        expected={"smic": {"negative": 70, "positive": 51, "surprise": 43}},
    ),
    "all": Protocol(
        "all",
        ("casme2", "samm", "smic", "smic-e", "casme3a", "mmew"),
        (),
        _all,
        "every annotated sample; the class is its emotion as written (lower case)",
    ),
}

DEFAULT_PROTOCOL = {
    "casme2": "casme2-5",
    "samm": "samm-5",
    "smic": "smic-3",
    "smic-e": "smic-3",
    "casme3a": "all",
    "mmew": "all",
}


def get_protocol(name: str) -> Protocol:
    key = str(name).strip().lower()
    if key not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; expected one of {', '.join(PROTOCOLS)}.")
    return PROTOCOLS[key]


def check_protocol_for(protocol: Protocol, databases) -> None:
    """Early check that a protocol applies to the databases being prepared."""
    bad = [d for d in databases if d not in protocol.databases]
    if bad:
        raise ConfigError(
            f"`protocol` {protocol.name} does not use {', '.join(bad)} "
            f"(it covers {', '.join(protocol.databases)}). For {bad[0]} use "
            f"`protocol` {DEFAULT_PROTOCOL.get(bad[0], 'all')} or all."
        )
