"""Ranks and percentiles of scored households, nationally and within each area level.

Rank 1 is the poorest household: the lowest predicted log per-capita consumption. Ties are broken
by the household's internal key (``households.id``), so ranks are total and deterministic: the same
scores always give the same ranks, whatever order the rows were read in. The percentile of a
household is ``rank / n`` where ``n`` counts the scored households of its partition, so it lies in
``(0, 1]`` and "the poorest 20 % of a union" is ``union_percentile <= 0.2``.

Partitions follow the BBS code hierarchy, which nests by prefix: a union code's first 2, 4 and 6
digits are its division, district and upazila (``docs/architecture.md``).

* :func:`rank_levels` ranks a whole score run at once in numpy (the full run has every prediction
  in memory anyway; sorting 1M households per level takes a fraction of a second, and writing ranks
  with the rows avoids rewriting every row with an ``UPDATE``, which costs a new row version per
  household on PostgreSQL).
* :func:`rerank_partition` and :func:`rank_by_counting` maintain the ranks of a stored run after an
  incremental re-score of one household (see ``docs/pmt.md``, "Scoring").
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import and_, func, or_, select, update

from models import Household, HouseholdScore, db

#: Area levels in rank order, with the length of their code prefix (None = national).
LEVELS: dict[str, int | None] = {"national": None, "division": 2, "district": 4, "upazila": 6, "union": 8}
#: Column of ``households`` holding each level's code.
AREA_COLUMNS = {
    "division": Household.division_code,
    "district": Household.district_code,
    "upazila": Household.upazila_code,
    "union": Household.union_code,
}


def partition_keys(union_codes: np.ndarray, level: str) -> np.ndarray | None:
    """Integer partition key of each household at ``level`` from 8-digit union codes (as integers)."""
    digits = LEVELS[level]
    if digits is None:
        return None
    return np.asarray(union_codes, dtype=np.int64) // 10 ** (8 - digits)


def rank_within(keys: np.ndarray | None, values: np.ndarray, tiebreak: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rank (1 = lowest value) and percentile (rank / partition size) of each row within its partition.

    ``keys`` are the partition keys (None: one partition), ``values`` the ranked values and
    ``tiebreak`` a unique integer per row that orders equal values.
    """
    return _ranks(keys, np.lexsort((tiebreak, values)))


def _ranks(keys: np.ndarray | None, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranks within partitions, given the global order of the rows (by value, then tiebreak)."""
    n = len(order)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    rank = np.empty(n, dtype=np.int64)
    if keys is None:
        rank[order] = np.arange(1, n + 1)
        return rank, rank / float(n)
    # A stable sort by partition keeps the global order inside each partition.
    order = order[np.argsort(keys[order], kind="stable")]
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, n])
    rank[order] = np.arange(n) - np.repeat(starts, sizes) + 1
    size = np.empty(n, dtype=np.int64)
    size[order] = np.repeat(sizes, sizes)
    return rank, rank / size


def rank_levels(
    union_codes: np.ndarray, predicted: np.ndarray, household_pk: np.ndarray, levels=tuple(LEVELS)
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{level: (rank, percentile)}`` for every level in ``levels`` (see :func:`rank_within`)."""
    if len(household_pk) > 1 and bool(np.all(household_pk[1:] > household_pk[:-1])):
        # Rows already in key order: a stable sort by value breaks ties by key.
        order = np.argsort(predicted, kind="stable")
    else:
        order = np.lexsort((household_pk, predicted))
    return {level: _ranks(partition_keys(union_codes, level), order) for level in levels}


def levels_within(area_code: str | None) -> tuple[str, ...]:
    """Levels whose partitions lie wholly inside ``area_code`` (all levels for a national run).

    A run limited to a district can rank its households within their district, upazila and
    union, but not within their division or the country: those partitions extend beyond it.
    """
    if area_code is None:
        return tuple(LEVELS)
    return tuple(level for level, digits in LEVELS.items() if digits is not None and digits >= len(area_code))


# --------------------------------------------------------------------------------------
# Maintaining a stored run after an incremental re-score
# --------------------------------------------------------------------------------------


def _rank_column(level: str):
    return getattr(HouseholdScore, f"{level}_rank")


def _percentile_column(level: str):
    return getattr(HouseholdScore, f"{level}_percentile")


def rerank_partition(run_id: int, level: str, code: str) -> int:
    """Recompute the ranks of one area partition of a stored run with a window function.

    Used for the small levels (union, upazila) after an incremental re-score; returns the number
    of households in the partition. Works on PostgreSQL and SQLite (>= 3.33, ``UPDATE … FROM``).
    """
    area_column = AREA_COLUMNS[level]
    ordered = (
        select(
            HouseholdScore.household_pk.label("pk"),
            func.row_number().over(order_by=(HouseholdScore.predicted_log_pc, HouseholdScore.household_pk)).label("rk"),
            func.count().over().label("n"),
        )
        .join(Household, Household.id == HouseholdScore.household_pk)
        .where(HouseholdScore.run_id == run_id, area_column == code)
        .subquery()
    )
    result = db.session.execute(
        update(HouseholdScore)
        .where(HouseholdScore.run_id == run_id, HouseholdScore.household_pk == ordered.c.pk)
        .values(
            {
                _rank_column(level): ordered.c.rk,
                _percentile_column(level): ordered.c.rk * 1.0 / ordered.c.n,
            }
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def rank_by_counting(run_id: int, level: str, code: str | None, household_pk: int, predicted: float) -> tuple[int, int]:
    """(rank, partition size) of one household in a stored run, by counting who is poorer.

    Used for the large levels (district, division, national) after an incremental re-score: the
    household's own rank is exact, while the other households of the partition keep their ranks
    until the next full run re-ranks everyone (see ``docs/pmt.md``).
    """
    poorer = or_(
        HouseholdScore.predicted_log_pc < predicted,
        and_(HouseholdScore.predicted_log_pc == predicted, HouseholdScore.household_pk < household_pk),
    )
    stmt = select(func.count().filter(poorer), func.count()).where(
        HouseholdScore.run_id == run_id, HouseholdScore.household_pk != household_pk
    )
    if level != "national":
        stmt = stmt.join(Household, Household.id == HouseholdScore.household_pk).where(AREA_COLUMNS[level] == code)
    below, others = db.session.execute(stmt).one()
    return int(below) + 1, int(others) + 1
