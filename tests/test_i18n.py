"""The Bangla catalogue: pages render in Bangla when asked, English by default, and every
wrapped string in the source has a Bangla translation with the same placeholders."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.catalog import PYTHON_FORMAT
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask_babel import refresh

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "web" / "translations"
PO_PATH = TRANSLATIONS / "bn" / "LC_MESSAGES" / "messages.po"
MO_PATH = TRANSLATIONS / "bn" / "LC_MESSAGES" / "messages.mo"
#: The same keywords as the ``pybabel extract -k ...`` command in docs/translations.md.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "lazy_ngettext": (1, 2)}
BRACE_FORMAT = re.compile(r"\{\w*(?:![rsa])?(?::[^{}]*)?\}")
UPDATE_HINT = "update the catalogue as described in docs/translations.md"


def _source_msgids() -> dict[str | tuple[str, ...], str]:
    """Every wrapped message in the source, extracted in memory with the rules of babel.cfg."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        assert context is None, "msgctxt is not used in this project"
        found.setdefault(message, f"{filename}:{lineno}")
    return found


def _catalog():
    with open(PO_PATH, "rb") as fh:
        return read_po(fh, locale="bn")


def _placeholders(text: str) -> Counter:
    # "%%" is an escaped percent sign, not a value: a translation may say "percent" in words.
    found = Counter(m.group(0) for m in PYTHON_FORMAT.finditer(text) if m.group(0) != "%%")
    return found + Counter(BRACE_FORMAT.findall(text))


def _forms(value) -> tuple[str, ...]:
    return value if isinstance(value, tuple) else (value,)


# ---------------------------------------------------------------------------------------- catalogue


def test_every_wrapped_message_has_a_bangla_translation():
    catalog = _catalog()
    missing = []
    for msgid, where in sorted(_source_msgids().items(), key=lambda item: item[1]):
        key = msgid[0] if isinstance(msgid, tuple) else msgid
        message = catalog.get(key)
        if message is None or message.fuzzy or not all(_forms(message.string)):
            missing.append(f"{where}: {msgid!r}")
    assert not missing, f"{len(missing)} message(s) without a Bangla translation ({UPDATE_HINT}):\n" + "\n".join(
        missing
    )


def test_catalogue_header_and_plural_forms():
    catalog = _catalog()
    assert str(catalog.locale) == "bn"
    assert catalog.plural_forms == "nplurals=2; plural=(n != 1);"
    for message in catalog:
        if message.id and message.pluralizable:
            assert len(message.string) == 2 and all(message.string), message.id


def test_placeholders_match_between_msgid_and_msgstr():
    wrong = []
    for message in _catalog():
        if not message.id or not message.string:
            continue
        wanted = _placeholders(_forms(message.id)[0])
        for form in _forms(message.string):
            if _placeholders(form) != wanted:
                wrong.append(f"{message.id!r}: {form!r}")
    assert not wrong, "placeholders differ between msgid and msgstr:\n" + "\n".join(wrong)


def test_compiled_catalogue_matches_the_po_file():
    """The .mo is committed; it must be recompiled whenever the .po changes."""
    assert MO_PATH.exists(), f"{MO_PATH} is missing: run pybabel compile ({UPDATE_HINT})"
    with open(MO_PATH, "rb") as fh:
        compiled = {m.id: m.string for m in read_mo(fh) if m.id}
    expected = {m.id: m.string for m in _catalog() if m.id and m.string and not m.fuzzy}
    assert compiled == expected, f"{MO_PATH.name} is stale: run pybabel compile ({UPDATE_HINT})"


# ---------------------------------------------------------------------------------------- pages


def _page(client, path: str, **kwargs) -> str:
    # flask-babel caches the locale on ``g``; the db_session fixture's app context makes ``g``
    # outlive a request in tests (not in production), so forget it before each request.
    refresh()
    return client.get(path, **kwargs).get_data(as_text=True)


def test_login_page_is_english_by_default(client):
    page = client.get("/login").get_data(as_text=True)
    assert '<html lang="en">' in page
    assert "Sign in" in page and "Username" in page and "Keep me signed in" in page
    assert "লগইন" not in page


@pytest.mark.parametrize(
    ("path", "headers"),
    [("/login?lang=bn", {}), ("/login", {"Accept-Language": "bn-BD,bn;q=0.9,en;q=0.5"})],
    ids=["query", "accept-language"],
)
def test_login_page_renders_in_bangla(client, path, headers):
    page = client.get(path, headers=headers).get_data(as_text=True)
    assert '<html lang="bn">' in page
    assert "লগইন" in page  # Sign in
    assert "ব্যবহারকারীর নাম" in page and "পাসওয়ার্ড" in page  # Username, Password (lazy form labels)
    assert "জাতীয় খানা তথ্যভান্ডার" in page  # National Household Database
    assert "Sign in" not in page and "Username" not in page


def test_language_switch_is_remembered_in_the_session(client, make_user, login, households):
    household = households.create()
    login(make_user("supervisor", areas=["10"]))
    assert client.get("/language/bn", headers={"Referer": "/"}).status_code == 302
    index = _page(client, "/")
    assert "স্বাগতম" in index and "এলাকাভিত্তিক খানা দেখুন" in index  # Welcome, Browse households by area
    assert "লগআউট" in index  # Sign out
    detail = _page(client, f"/households/{household.household_id}")
    assert "সংস্করণের ইতিহাস" in detail and "Version history" not in detail
    client.get("/language/en")
    assert "Version history" in _page(client, f"/households/{household.household_id}")


def test_flash_message_is_translated(client, make_user):
    user = make_user("viewer")
    response = client.post("/login?lang=bn", data={"username": user.username, "password": "not the password"})
    assert "ব্যবহারকারীর নাম অজানা অথবা পাসওয়ার্ড ভুল।" in response.get_data(as_text=True)
