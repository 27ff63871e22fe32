"""Likely duplicate persons across households: name normalisation, blocking keys, fuzzy scores.

How a candidate is found (never by scanning all members):

1. **Normalise** each name: Unicode NFC, case-folded, punctuation dropped, common spelling
   variants folded (Bangla: long/short vowel signs, the three sibilants, ণ/ন, য/জ, ড়/র, nukta
   forms, chandrabindu, visarga; English: Mohammad/Mohammed/Md./Muhammad, Begum/Bagum,
   Uddin/Uddeen, Khatun/Khatoon, Akter/Akhter, ...) and honorifics dropped (Md., Mst., Sheikh, মোঃ, ...).
2. **Blocking keys**: a consonant skeleton of the given name (first significant token) joined
   with the skeleton of the father's (``|f``) or mother's (``|m``) given name, for each script a
   name is written in, plus the birth year (from the date of birth, or interview year minus age).
   They are stored in ``member_match_keys`` (indexed on ``(name_key, birth_year)``), filled by
   approvals (:func:`index_households`), by ``socreg dedup index`` and the ``dedup.index`` job
   (:func:`rebuild_keys`, set-based in batches), and refreshed for an area by ``socreg dedup scan``.
   Blocking on a parent's name follows the duplicate definition itself ("same father's/mother's
   name") and keeps blocks small at national scale; the price is that a duplicate whose parents'
   names are both spelled beyond recognition, or written only in the other script, is missed.
3. **Score** each candidate in the block with RapidFuzz (``token_sort_ratio`` of the normalised
   names, same script only: transliteration is not attempted), parents' names, and birth date
   proximity; a pair scoring at least :data:`FLAG_THRESHOLD` (0-100) is flagged for the reviewer,
   never merged.

A bulk import queues a ``dedup.index`` job for the id range of the households it created (the
per-person key computation is Python and would double the import's time); until a worker has run
it, those members are not found as candidates.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz
from sqlalchemy import and_, delete, func, insert, literal, or_, select
from sqlalchemy.orm import aliased

from models import Household, Member, db
from models.change_request import MemberMatchKey
from registry.jobs import job_handler

log = logging.getLogger(__name__)

#: A pair scoring at least this (0-100) is flagged as a likely duplicate.
FLAG_THRESHOLD = 80.0
#: ... and its names must be at least this similar on their own.
NAME_THRESHOLD = 75.0
#: Candidates kept per person (best first).
MAX_CANDIDATES = 5
#: Rows of keys written per statement when rebuilding.
INDEX_BATCH = 5_000

# --- normalisation ---------------------------------------------------------------------

_BN_VOWEL_SIGNS = "\u09be\u09bf\u09c0\u09c1\u09c2\u09c3\u09c4\u09c7\u09c8\u09cb\u09cc\u09d7"
_BN_INDEPENDENT_VOWELS = "\u0985\u0986\u0987\u0988\u0989\u098a\u098b\u098f\u0990\u0993\u0994"
_HASANTA = "\u09cd"
_NUKTA = "\u09bc"
#: Spelling variants folded before comparison. Order matters: multi-character forms first.
_BN_FOLDS = (
    ("\u200c", ""),  # zero-width non-joiner
    ("\u200d", ""),  # zero-width joiner
    ("\u09af" + _NUKTA, "\u09df"),  # য় (decomposed by NFC) kept apart from য while folding
    ("\u09a1" + _NUKTA, "\u09b0"),  # ড় -> র (commonly confused in spelling)
    ("\u09a2" + _NUKTA, "\u09b0"),  # ঢ় -> র
    ("\u09c0", "\u09bf"),  # ী -> ি
    ("\u09c2", "\u09c1"),  # ূ -> ু
    ("\u0988", "\u0987"),  # ঈ -> ই
    ("\u098a", "\u0989"),  # ঊ -> উ
    ("\u09b7", "\u09b6"),  # ষ -> শ
    ("\u09b8", "\u09b6"),  # স -> শ
    ("\u099b", "\u099a"),  # ছ -> চ (মোছাঃ / মোসাঃ spellings)
    ("\u09a3", "\u09a8"),  # ণ -> ন
    ("\u09af", "\u099c"),  # য -> জ
    ("\u09ce", "\u09a4"),  # ৎ -> ত
    ("\u0999", "\u0982"),  # ঙ -> ং
    ("\u0981", ""),  # chandrabindu
    ("\u0983", ""),  # visarga (the abbreviation mark of মোঃ)
    ("\u09df", "\u09af" + _NUKTA),  # back to য়
)
_EN_CANONICAL = {
    **dict.fromkeys(
        ("md", "mohammad", "mohammed", "muhammad", "muhammed", "mohamed", "mohamad", "mohd", "mohammod", "muhammod"),
        "md",
    ),
    **dict.fromkeys(("mst", "mosammat", "mosammet", "musammat", "mosamat", "most", "mossammat", "mstt"), "mst"),
    **dict.fromkeys(("begum", "bagum", "begom", "bgm"), "begum"),
    **dict.fromkeys(("uddin", "uddeen", "uddin", "uddim", "ud-din"), "uddin"),
    **dict.fromkeys(("khatun", "khatoon", "khatun", "khaton"), "khatun"),
    **dict.fromkeys(("akter", "akhter", "aktar", "akhtar", "akther"), "akter"),
    **dict.fromkeys(("sheikh", "shaikh", "sk", "shekh", "sheik"), "sheikh"),
    **dict.fromkeys(("hossain", "hossen", "hosen", "hussain", "husain", "hosain"), "hossain"),
    **dict.fromkeys(("rahman", "rohman", "rahaman", "rehman"), "rahman"),
    **dict.fromkeys(("islam", "eslam"), "islam"),
    **dict.fromkeys(("chowdhury", "chowdhuri", "choudhury", "chaudhury"), "chowdhury"),
}
#: Honorifics and name particles dropped before comparing and before picking the given name.
_EN_PARTICLES = frozenset({"md", "mst", "sheikh", "syed", "sayed", "mr", "mrs", "ms", "dr", "late", "sri", "smt"})
#: Particles skipped when choosing the given name for the blocking key (but kept for comparison).
_EN_KEY_SKIP = frozenset({"abdul", "abdur", "abu", "abul", "al", "nur", "noor"})
_BN_PARTICLES_RAW = (
    "মোঃ",
    "মো:",
    "মো",
    "মোহাম্মদ",
    "মুহাম্মদ",
    "মোহাম্মেদ",
    "মুহম্মদ",
    "মোছাঃ",
    "মোছা:",
    "মোসাঃ",
    "মোসাম্মৎ",
    "মোছাম্মৎ",
    "মোসাম্মাত",
    "শেখ",
    "সৈয়দ",
    "মিসেস",
    "জনাব",
    "মরহুম",
    "মৃত",
    "শ্রী",
    "শ্রীমতী",
)
_BN_KEY_SKIP_RAW = ("আব্দুল", "আবদুল", "আব্দুর", "আবদুর", "আবু", "আবুল", "নূর", "নুর")
_SPLIT = re.compile(r"[\s.,;:()'\"/\\_]+")
_LATIN = re.compile(r"[a-z]")


def _fold_bangla(text: str) -> str:
    for old, new in _BN_FOLDS:
        text = text.replace(old, new)
    return text


def _fold_latin_token(token: str) -> str:
    return _EN_CANONICAL.get(token, token)


@lru_cache(maxsize=1)
def _bangla_particles() -> tuple[frozenset[str], frozenset[str]]:
    def norm(word: str) -> str:
        return _fold_bangla(unicodedata.normalize("NFC", word)).replace(":", "")

    return frozenset(norm(w) for w in _BN_PARTICLES_RAW), frozenset(norm(w) for w in _BN_KEY_SKIP_RAW)


def _tokens(text: str | None) -> list[str]:
    """Normalised tokens of a name (variants folded), particles included."""
    if not text:
        return []
    # Hyphens join parts of one name (Ud-din, Nur-e-Alam): drop them rather than split there.
    text = _fold_bangla(unicodedata.normalize("NFC", str(text)).casefold()).replace("-", "")
    return [_fold_latin_token(t) for t in _SPLIT.split(text) if t]


def _is_particle(token: str) -> bool:
    return token in _EN_PARTICLES or token in _bangla_particles()[0]


def normalise_name(text: str | None) -> str:
    """A name ready for fuzzy comparison: NFC, folded variants, honorifics removed."""
    tokens = _tokens(text)
    kept = [t for t in tokens if not _is_particle(t)]
    return " ".join(kept or tokens)


def given_name(text: str | None) -> str | None:
    """The first distinctive token of a name (honorifics and particles such as Abdul skipped)."""
    every = _tokens(text)
    tokens = [t for t in every if not _is_particle(t)] or every
    if not tokens:
        return None
    skip = _EN_KEY_SKIP | _bangla_particles()[1]
    return next((t for t in tokens if t not in skip), tokens[-1])


_LATIN_DIGRAPHS = (
    ("kh", "k"),
    ("gh", "g"),
    ("ch", "c"),
    ("jh", "j"),
    ("th", "t"),
    ("dh", "d"),
    ("ph", "f"),
    ("bh", "b"),
    ("sh", "s"),
    ("ck", "k"),
    ("z", "j"),
    ("q", "k"),
    ("v", "b"),
    ("x", "ks"),
)


def skeleton(token: str | None) -> str | None:
    """A phonetic-ish key of one name token: the first letter and the following consonants with
    vowels (and repeated letters) dropped, so Rahim/Raheem/Rohim and রহিম/রহীম share a key."""
    if not token:
        return None
    if _LATIN.search(token):
        word = "".join(ch for ch in token if "a" <= ch <= "z")
        if not word:
            return None
        for old, new in _LATIN_DIGRAPHS:
            word = word.replace(old, new)
        first, rest = word[0], word[1:]
        if first in "aeiouy":
            first = "a"
        rest = "".join(ch for ch in rest if ch not in "aeiouyhw")
    else:
        word = "".join(ch for ch in token if "\u0980" <= ch <= "\u09ff" and ch not in _HASANTA)
        if not word:
            return None
        first, rest = word[0], word[1:]
        if first in _BN_INDEPENDENT_VOWELS:
            first = "\u0985"
        rest = "".join(
            ch for ch in rest if ch not in _BN_VOWEL_SIGNS and ch not in _BN_INDEPENDENT_VOWELS and ch != _NUKTA
        )
    out = [first]
    for ch in rest:
        if ch != out[-1]:
            out.append(ch)
    return "".join(out)[:30]


def _date(value) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def birth_year_of(person: Mapping, interview_date=None) -> tuple[int | None, bool]:
    """The person's birth year and whether it is exact (from a date of birth) or derived from age."""
    dob = _date(person.get("date_of_birth"))
    if dob is not None:
        return dob.year, True
    age = person.get("age_years")
    when = _date(interview_date) or dt.date.today()
    if age is None:
        return None, False
    return when.year - int(age), False


def person_keys(person: Mapping) -> set[str]:
    """Blocking keys of one person: given-name skeleton x parent given-name skeleton, per script."""
    givens = {skeleton(given_name(person.get(f))) for f in ("name_bn", "name_en")} - {None}
    parents = {
        f"{tag}{s}"
        for tag, field in (("f", "father_name"), ("m", "mother_name"))
        if (s := skeleton(given_name(person.get(field))))
    }
    if not parents:
        parents = {"-"}
    return {f"{g}|{p}"[:80] for g in givens for p in parents}


# --- scoring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class MatchScore:
    """How alike two persons are (0-100 each) and whether that makes a likely duplicate."""

    score: float
    name: float
    parents: float | None
    birth: float

    @property
    def is_likely_duplicate(self) -> bool:
        # Births more than about two years apart are different people, however alike the names.
        return self.score >= FLAG_THRESHOLD and self.name >= NAME_THRESHOLD and self.birth > 0

    def as_dict(self) -> dict:
        return {
            "score": round(self.score, 1),
            "name_score": round(self.name, 1),
            "parent_score": None if self.parents is None else round(self.parents, 1),
            "birth_score": round(self.birth, 1),
        }


def _script(text: str) -> str:
    return "en" if _LATIN.search(text.casefold()) else "bn"


def _similarity(a: str | None, b: str | None) -> float | None:
    """Fuzzy similarity of two names (None when they cannot be compared: missing or other script)."""
    if not a or not b:
        return None
    na, nb = normalise_name(a), normalise_name(b)
    if not na or not nb or _script(na) != _script(nb):
        return None
    return float(fuzz.token_sort_ratio(na, nb))


def score_pair(a: Mapping, b: Mapping, a_interview=None, b_interview=None) -> MatchScore:
    """Score two persons (member dicts) as possible duplicates."""
    names = [s for f in ("name_en", "name_bn") if (s := _similarity(a.get(f), b.get(f))) is not None]
    # Names written in one field for one person and the other field for the other still compare by script.
    names += [
        s
        for fa, fb in (("name_en", "name_bn"), ("name_bn", "name_en"))
        if (s := _similarity(a.get(fa), b.get(fb))) is not None
    ]
    name = max(names, default=0.0)
    parents = [s for f in ("father_name", "mother_name") if (s := _similarity(a.get(f), b.get(f))) is not None]
    parent = sum(parents) / len(parents) if parents else None
    dob_a, dob_b = _date(a.get("date_of_birth")), _date(b.get("date_of_birth"))
    if dob_a and dob_b:
        days = abs((dob_a - dob_b).days)
        birth = 100.0 if days == 0 else max(0.0, 90.0 - 30.0 * days / 365.0)
    else:
        ya, _ = birth_year_of(a, a_interview)
        yb, _ = birth_year_of(b, b_interview)
        gap = abs(ya - yb) if ya is not None and yb is not None else 99
        birth = {0: 85.0, 1: 70.0, 2: 45.0}.get(gap, 0.0)
    if parent is None:
        # Less evidence: the same weights without parents, scaled down so a name alone rarely flags.
        score = 0.9 * (0.7 * name + 0.3 * birth)
    else:
        score = 0.5 * name + 0.3 * parent + 0.2 * birth
    if a.get("sex") and b.get("sex") and int(a["sex"]) != int(b["sex"]):
        score *= 0.8
    return MatchScore(score, name, parent, birth)


# --- the key index -----------------------------------------------------------------------


def _key_rows(member: Member, household: Household) -> list[dict]:
    person = {f: getattr(member, f) for f in ("name_bn", "name_en", "father_name", "mother_name")}
    year, _exact = birth_year_of(
        {"date_of_birth": member.date_of_birth, "age_years": member.age_years}, household.interview_date
    )
    if year is None:
        return []
    return [
        {
            "member_id": member.id,
            "household_pk": household.id,
            "union_code": household.union_code,
            "name_key": key,
            "birth_year": year,
        }
        for key in sorted(person_keys(person))
    ]


def index_households(households: Iterable[Household]) -> int:
    """(Re)write the blocking keys of these households' current members (flushes); returns rows."""
    households = [h for h in households if h is not None]
    if not households:
        return 0
    db.session.flush()
    db.session.execute(delete(MemberMatchKey).where(MemberMatchKey.household_pk.in_([h.id for h in households])))
    rows = [row for h in households for m in h.members for row in _key_rows(m, h)]
    if rows:
        db.session.execute(insert(MemberMatchKey), rows)
    return len(rows)


def rebuild_keys(
    area_code: str | None = None,
    *,
    progress=None,
    batch_households: int = 2_000,
    id_range: tuple[int, int] | None = None,
) -> int:
    """Recompute the keys of every household in ``area_code`` (all when None), or of the
    households whose ids are within ``id_range`` (inclusive; a bulk import's), in batches of
    households read in id order (a keyset scan, so memory stays flat); returns rows written."""
    written = 0
    last_id = 0
    done = 0
    area_filter = Household.union_code.startswith(area_code, autoescape=True) if area_code else literal(True)
    if id_range is not None:
        low, high = int(id_range[0]), int(id_range[1])
        last_id = low - 1
        area_filter = and_(area_filter, Household.id <= high)
        db.session.execute(delete(MemberMatchKey).where(MemberMatchKey.household_pk.between(low, high)))
    elif area_code:
        db.session.execute(
            delete(MemberMatchKey).where(MemberMatchKey.union_code.startswith(area_code, autoescape=True))
        )
    else:
        db.session.execute(delete(MemberMatchKey))
    while True:
        batch = db.session.execute(
            select(Household.id, Household.union_code, Household.interview_date)
            .where(area_filter, Household.id > last_id)
            .order_by(Household.id)
            .limit(batch_households)
        ).all()
        if not batch:
            break
        last_id = batch[-1].id
        info = {r.id: r for r in batch}
        members = db.session.execute(
            select(
                Member.id,
                Member.household_pk,
                Member.name_bn,
                Member.name_en,
                Member.father_name,
                Member.mother_name,
                Member.date_of_birth,
                Member.age_years,
            ).where(Member.household_pk.in_(list(info)))
        ).all()
        rows = []
        for m in members:
            h = info[m.household_pk]
            year, _ = birth_year_of({"date_of_birth": m.date_of_birth, "age_years": m.age_years}, h.interview_date)
            if year is None:
                continue
            for key in person_keys(m._mapping):
                rows.append(
                    {
                        "member_id": m.id,
                        "household_pk": h.id,
                        "union_code": h.union_code,
                        "name_key": key,
                        "birth_year": year,
                    }
                )
        for start in range(0, len(rows), INDEX_BATCH):
            db.session.execute(insert(MemberMatchKey), rows[start : start + INDEX_BATCH])
        written += len(rows)
        done += len(batch)
        if progress is not None:
            progress(done)
    db.session.flush()
    return written


@job_handler("dedup.index")
def _index_job(context) -> dict:
    """Background (re)indexing: payload ``{"area": code}`` (or none for the whole registry), or
    ``{"households": [first_id, last_id]}`` for the households of a bulk import."""
    area = (context.payload or {}).get("area")
    id_range = (context.payload or {}).get("households")
    rows = rebuild_keys(
        area,
        id_range=tuple(id_range) if id_range else None,
        progress=lambda n: context.progress(n, message=f"{n} households indexed"),
    )
    return {"area": area, "households": id_range, "keys": rows}


# --- candidate search ------------------------------------------------------------------


_MEMBER_FIELDS_SHOWN = (
    "line_no",
    "name_bn",
    "name_en",
    "father_name",
    "mother_name",
    "date_of_birth",
    "age_years",
    "sex",
    "nid_number",
)


def _member_dict(member: Member) -> dict:
    out = {f: getattr(member, f) for f in _MEMBER_FIELDS_SHOWN}
    if out["date_of_birth"] is not None:
        out["date_of_birth"] = out["date_of_birth"].isoformat()
    return out


def find_duplicates(
    persons: Iterable[Mapping],
    *,
    interview_date=None,
    exclude_household_pks: Iterable[int] = (),
    limit: int = MAX_CANDIDATES,
) -> list[dict]:
    """Likely duplicates of ``persons`` (member dicts with ``line_no``) among current members of
    active households, found through the key index: ``[{"line_no", "score", "name_score", ...,
    "candidate": {"household_id", "union_code", "line_no", names..., "date_of_birth", ...}}]``."""
    exclude = set(exclude_household_pks)
    flags: list[dict] = []
    for person in persons:
        keys = person_keys(person)
        year, exact = birth_year_of(person, interview_date)
        if not keys or year is None:
            continue
        window = 1 if exact else 2
        stmt = (
            select(Member, Household)
            .join(MemberMatchKey, MemberMatchKey.member_id == Member.id)
            .join(Household, Household.id == Member.household_pk)
            .where(
                MemberMatchKey.name_key.in_(sorted(keys)),
                MemberMatchKey.birth_year.between(year - window, year + window),
                Household.status == "active",
            )
            .distinct()
        )
        if exclude:
            stmt = stmt.where(MemberMatchKey.household_pk.not_in(sorted(exclude)))
        scored = []
        for member, household in db.session.execute(stmt).all():
            match = score_pair(person, _member_dict(member), interview_date, household.interview_date)
            if match.is_likely_duplicate:
                scored.append((match, member, household))
        scored.sort(key=lambda t: -t[0].score)
        for match, member, household in scored[:limit]:
            flags.append(
                {
                    "line_no": person.get("line_no"),
                    **match.as_dict(),
                    "candidate": {
                        "household_id": household.household_id,
                        "union_code": household.union_code,
                        **_member_dict(member),
                    },
                }
            )
    return flags


# --- registry-wide scan ------------------------------------------------------------------

SCAN_COLUMNS = (
    "score",
    "name_score",
    "parent_score",
    "birth_score",
    *(f"{side}_{f}" for side in ("a", "b") for f in ("household_id", "union_code", *_MEMBER_FIELDS_SHOWN)),
)


def scan_duplicates(area_code: str | None = None, *, min_score: float = FLAG_THRESHOLD) -> Iterator[dict]:
    """Likely duplicate pairs with at least one person in ``area_code`` (the whole registry when
    None), each pair once, best first within each block. A self-join of the key index on
    ``(name_key, birth_year ± 2)``: only persons sharing a block are ever compared."""
    k1, k2 = aliased(MemberMatchKey), aliased(MemberMatchKey)
    cond = [
        k2.name_key == k1.name_key,
        k2.birth_year.between(k1.birth_year - 2, k1.birth_year + 2),
        k2.household_pk != k1.household_pk,
    ]
    stmt = select(k1.member_id.label("a"), k2.member_id.label("b")).join(k2, and_(*cond))
    if area_code:
        in_area = k2.union_code.startswith(area_code, autoescape=True)
        stmt = stmt.where(
            k1.union_code.startswith(area_code, autoescape=True), or_(~in_area, k1.member_id < k2.member_id)
        )
    else:
        stmt = stmt.where(k1.member_id < k2.member_id)
    pairs = sorted({(r.a, r.b) for r in db.session.execute(stmt.distinct())})
    log.info("dedup scan: %s candidate pairs from the key index", len(pairs))
    cache: dict[int, tuple[dict, Household]] = {}

    def load(ids: set[int]) -> None:
        missing = sorted(ids - cache.keys())
        for start in range(0, len(missing), 1000):
            chunk = missing[start : start + 1000]
            for member, household in db.session.execute(
                select(Member, Household)
                .join(Household, Household.id == Member.household_pk)
                .where(Member.id.in_(chunk))
            ).all():
                cache[member.id] = (_member_dict(member), household)

    for start in range(0, len(pairs), 2000):
        chunk = pairs[start : start + 2000]
        load({i for pair in chunk for i in pair})
        for a_id, b_id in chunk:
            if a_id not in cache or b_id not in cache:
                continue
            (a, ha), (b, hb) = cache[a_id], cache[b_id]
            if ha.status != "active" or hb.status != "active":
                continue
            match = score_pair(a, b, ha.interview_date, hb.interview_date)
            if match.score < min_score or match.name < NAME_THRESHOLD or match.birth <= 0:
                continue
            row = match.as_dict()
            for side, person, household in (("a", a, ha), ("b", b, hb)):
                row[f"{side}_household_id"] = household.household_id
                row[f"{side}_union_code"] = household.union_code
                for f in _MEMBER_FIELDS_SHOWN:
                    row[f"{side}_{f}"] = person.get(f)
            yield row


def count_keys(area_code: str | None = None) -> int:
    """How many blocking keys are stored (for an area)."""
    stmt = select(func.count()).select_from(MemberMatchKey)
    if area_code:
        stmt = stmt.where(MemberMatchKey.union_code.startswith(area_code, autoescape=True))
    return db.session.scalar(stmt) or 0
