"""Database, subject and clip naming shared by every reader and loader.

Canonical ids (reference section 2): CASME II ``sub01`` + ``EP02_01f``; SAMM ``006`` +
``006_1_2``; SMIC ``s01`` + ``s01_ne_01``. A sample id is ``<subject>_<clip>``, the stem of
the STSTNet release file names (``sub01_EP02_01f``, ``006_006_1_2``, ``s01_s01_ne_01``).
"""

from __future__ import annotations

import re

# The composite's three classes, in the label order of the public release (0, 1, 2).
MEGC_CLASSES = ("negative", "positive", "surprise")

# Canonical database keys and the spellings found in the wild.
DATABASES = ("casme2", "samm", "smic", "smic-e", "casme3a", "mmew")
_DB_ALIASES = {
    "casme2": "casme2",
    "casmeii": "casme2",
    "casme_2": "casme2",
    "casme-2": "casme2",
    "casme 2": "casme2",
    "casme ii": "casme2",
    "casme_ii": "casme2",
    "samm": "samm",
    "smic": "smic",
    "smic-hs": "smic",
    "smic_hs": "smic",
    "smichs": "smic",
    "smic-e": "smic-e",
    "smic_e": "smic-e",
    "smic-hs-e": "smic-e",
    "smice": "smic-e",
    "casme3a": "casme3a",
    "casme3": "casme3a",
    "cas(me)3": "casme3a",
    "cas(me)^3": "casme3a",
    "casme3_a": "casme3a",
    "casme3-a": "casme3a",
    "mmew": "mmew",
}
# Display names for tables and reports.
DB_DISPLAY = {
    "casme2": "CASME II",
    "samm": "SAMM",
    "smic": "SMIC",
    "smic-e": "SMIC-E",
    "casme3a": "CAS(ME)^3 A",
    "mmew": "MMEW",
    "full": "Full",
}


def normalize_database(name: str) -> str | None:
    """Map a database spelling (``CASME2``, ``smic_hs``...) to its key, or None if unknown."""
    key = str(name).strip().lower()
    return _DB_ALIASES.get(key)


def database_from_subject(subject: str) -> str | None:
    """Infer the database from subject naming: ``subNN`` CASME II, 3 digits SAMM, ``sNN`` SMIC."""
    s = str(subject).strip()
    if re.fullmatch(r"(?i)sub\d+", s):
        return "casme2"
    if re.fullmatch(r"\d{1,3}", s):
        return "samm"
    if re.fullmatch(r"(?i)s\d+", s):
        return "smic"
    return None


def normalize_subject(subject: object, database: str | None = None) -> str:
    """Canonical subject id: ``sub01``, ``006``, ``s01``; ``1`` becomes ``sub01``/``006``/``s01``
    when the database says which. Unknown forms are returned stripped."""
    s = str(subject).strip()
    if re.fullmatch(r"\d+\.0", s):  # a spreadsheet float
        s = s[:-2]
    db = database or database_from_subject(s)
    m = re.fullmatch(r"(?i)(sub|s)?0*(\d+)", s)
    if m and db == "casme2":
        return f"sub{int(m.group(2)):02d}"
    if m and db == "samm" and m.group(1) is None:
        return f"{int(m.group(2)):03d}"
    if m and db in ("smic", "smic-e"):
        return f"s{int(m.group(2)):02d}"
    return s


def normalize_clip(clip: str, database: str | None = None) -> str:
    """Canonical clip id. SMIC raw folders write ``s1_ne_01``: that becomes ``s01_ne_01``."""
    c = str(clip).strip()
    if database in ("smic", "smic-e"):
        m = re.fullmatch(r"(?i)s0*(\d+)_(.+)", c)
        if m:
            return f"s{int(m.group(1)):02d}_{m.group(2)}"
    if database == "samm":
        m = re.fullmatch(r"0*(\d+)_(.+)", c)
        if m:
            return f"{int(m.group(1)):03d}_{m.group(2)}"
    return c


def sample_id(subject: str, clip: str) -> str:
    return f"{subject}_{clip}"
