"""Raw-dataset readers: official folder layout + annotation sheet -> :class:`RawSample` list.

``READERS`` maps a database key (``glfnet.data.naming.DATABASES``) to a :class:`Reader`;
:func:`read_database` is the one call most code needs::

    scan = read_database("casme2", "/data/CASME2")      # DatasetScan
    for s in scan.samples: s.sample_id, s.emotion, s.onset, s.apex, s.frames, s.anomalies
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from glfnet.data import naming
from glfnet.data.readers import casme2, casme3a, mmew, samm, smic
from glfnet.data.readers.base import DatasetScan, RawSample
from glfnet.errors import ConfigError

__all__ = ["READERS", "DatasetScan", "RawSample", "Reader", "get_reader", "read_database"]


@dataclass(frozen=True)
class Reader:
    name: str
    display: str
    read: Callable[..., DatasetScan]
    layout: str  # expected folder layout, shown by --help and in error messages
    variants: tuple[str, ...]  # frame sets: raw, selected, cropped
    has_sheet: bool = True


READERS: dict[str, Reader] = {
    "casme2": Reader("casme2", "CASME II", casme2.read, casme2.LAYOUT, ("raw", "selected", "cropped")),
    "samm": Reader("samm", "SAMM", samm.read, samm.LAYOUT, ("raw",)),
    "smic": Reader("smic", "SMIC-HS", smic.read, smic.LAYOUT, ("raw", "cropped"), has_sheet=False),
    "smic-e": Reader("smic-e", "SMIC-E (HS)", smic.read_e, smic.LAYOUT_E, ("raw",)),
    "casme3a": Reader("casme3a", "CAS(ME)^3 Part A", casme3a.read, casme3a.LAYOUT, ("raw",)),
    "mmew": Reader("mmew", "MMEW", mmew.read, mmew.LAYOUT, ("raw",)),
}


def get_reader(name: str) -> Reader:
    key = naming.normalize_database(name)
    if key not in READERS:
        raise ConfigError(f"unknown database {name!r}; expected one of {', '.join(READERS)}.")
    return READERS[key]


def read_database(
    name: str, root: str | Path, annotations: str | Path | None = None, variant: str = "auto"
) -> DatasetScan:
    """Read one database from its official layout under ``root``. Raises DataError (wrong
    root, missing sheet, missing columns) with a message naming what was expected."""
    return get_reader(name).read(root, annotations=annotations, variant=variant)
