"""Geography: loading the BBS geo-codes and answering area questions."""

from __future__ import annotations

import csv
import time
import weakref
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import func, select

from models import Area, db
from models.codes import AREA_LEVELS

GEO_DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "bd_geo"
UNIT_AREA_TYPE = {"union": 1, "paurashava": 2, "ward": 3}
LEVEL_BY_LENGTH = {2: "division", 4: "district", 6: "upazila", 8: "union"}


class UnknownAreaError(LookupError):
    """An area code that is not in the registry's geography."""

    def __init__(self, code: str):
        self.code = code
        super().__init__(f"unknown area code {code!r} (expected a BBS geo-code of 2, 4, 6 or 8 digits)")


def _read(name: str) -> list[dict[str, str]]:
    with open(GEO_DATA_DIR / name, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def geography_rows() -> list[dict]:
    """All areas from the bundled CSVs, parents before children."""
    rows: list[dict] = []
    for r in _read("divisions.csv"):
        rows.append(
            dict(
                code=r["code"],
                level="division",
                parent_code=None,
                name_en=r["name_en_current"] or r["name_en"],
                name_bn=r["name_bn"] or None,
                area_type=None,
                unit_type="division",
                status="current",
            )
        )
    for r in _read("districts.csv"):
        rows.append(
            dict(
                code=r["code"],
                level="district",
                parent_code=r["parent_code"],
                name_en=r["name_en_current"] or r["name_en"],
                name_bn=r["name_bn"] or None,
                area_type=None,
                unit_type="district",
                status="current",
            )
        )
    for r in _read("upazilas.csv"):
        rows.append(
            dict(
                code=r["code"],
                level="upazila",
                parent_code=r["parent_code"],
                name_en=r["name_en"],
                name_bn=r["name_bn"] or None,
                area_type=None,
                unit_type=r["unit_type"],
                status=r["status"],
            )
        )
    for r in _read("unions.csv"):
        rows.append(
            dict(
                code=r["code"],
                level="union",
                parent_code=r["parent_code"],
                name_en=r["name_en"],
                name_bn=r["name_bn"] or None,
                area_type=UNIT_AREA_TYPE[r["unit_type"]],
                unit_type=r["unit_type"],
                status="current",
            )
        )
    return rows


def load_geography() -> dict[str, dict[str, int]]:
    """Insert or update every area from the bundled files; idempotent.

    Returns per level how many areas were inserted, updated and left unchanged.
    """
    _area_types_cache.clear()
    existing = {a.code: a for a in db.session.scalars(select(Area))}
    counts = {level: {"inserted": 0, "updated": 0, "unchanged": 0} for level in AREA_LEVELS}
    fields = ("level", "parent_code", "name_en", "name_bn", "area_type", "unit_type", "status")
    for level in AREA_LEVELS:
        for row in (r for r in geography_rows() if r["level"] == level):
            area = existing.get(row["code"])
            if area is None:
                db.session.add(Area(**row))
                counts[level]["inserted"] += 1
            elif any(getattr(area, f) != row[f] for f in fields):
                for f in fields:
                    setattr(area, f, row[f])
                counts[level]["updated"] += 1
            else:
                counts[level]["unchanged"] += 1
        # Parents must exist before children reference them (PostgreSQL checks FKs per statement).
        db.session.flush()
    return counts


def count_areas() -> dict[str, int]:
    """Number of areas per level."""
    rows = db.session.execute(select(Area.level, func.count()).group_by(Area.level)).all()
    return {level: dict(rows).get(level, 0) for level in AREA_LEVELS}


def get_area(code: str) -> Area:
    """The area with this code, or :class:`UnknownAreaError`."""
    area = db.session.get(Area, code) if code else None
    if area is None:
        raise UnknownAreaError(code)
    return area


#: How long a process trusts the union area types it has read. They are reference data that change
#: only when the geography is loaded again: :func:`load_geography` forgets them in its own process,
#: other processes (server workers) read them again after this many seconds.
AREA_TYPES_TTL = 300.0
#: Per database engine: (when the entries were first read, {union code: area type}).
_area_types_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def read_union_area_types(codes: list[str] | None = None) -> dict[str, int]:
    """Every union's area type (or those among ``codes``), read now: an import validates against
    the geography as it is."""
    stmt = select(Area.code, Area.area_type).where(Area.level == "union")
    if codes is None:
        return dict(db.session.execute(stmt).all())
    out: dict[str, int] = {}
    for start in range(0, len(codes), 900):  # SQLite's bound-parameter limit
        out.update(db.session.execute(stmt.where(Area.code.in_(codes[start : start + 900]))).all())
    return out


def union_area_types(codes: Iterable[str]) -> dict[str, int]:
    """Area type of each known union among ``codes`` (unknown codes are absent).

    Every change request validates its union's type: all unions' types are read at once and
    remembered (for :data:`AREA_TYPES_TTL`) instead of costing each submission a query. Unknown
    codes are asked again every time, so a union added by a geography load is found at once."""
    codes = [c for c in set(codes) if c]
    engine = _engine()
    read_at, known = _area_types_cache.get(engine, (None, None))
    if read_at is None or time.monotonic() - read_at > AREA_TYPES_TTL:
        # All of them at once (about 5,000 rows): submissions come from every union.
        read_at = time.monotonic()
        known = read_union_area_types()
        _area_types_cache[engine] = (read_at, known)
        missing = []
    else:
        missing = [c for c in codes if c not in known]
    if missing:
        known.update(read_union_area_types(missing))
    return {c: known[c] for c in codes if c in known}


def _engine():
    bind = db.session.get_bind()
    return getattr(bind, "engine", bind)


def area_chain(code: str) -> list[Area]:
    """The area and its ancestors, from division down to the area itself."""
    chain = []
    area = get_area(code)
    while area is not None:
        chain.append(area)
        area = db.session.get(Area, area.parent_code) if area.parent_code else None
    return list(reversed(chain))


def list_children(code: str | None) -> list[Area]:
    """Sub-areas of an area (divisions when ``code`` is None), ordered by name."""
    stmt = select(Area).order_by(Area.name_en)
    stmt = stmt.where(Area.parent_code == code) if code else stmt.where(Area.level == "division")
    return list(db.session.scalars(stmt))


def area_level(code: str) -> str:
    """The level of a geo-code by its length."""
    try:
        return LEVEL_BY_LENGTH[len(code)]
    except KeyError:
        raise UnknownAreaError(code) from None


def code_within(code: str, scope_codes: Iterable[str]) -> bool:
    """Whether ``code`` lies in (or is) one of the scope areas: BBS codes nest by prefix."""
    return any(code.startswith(scope) for scope in scope_codes)
