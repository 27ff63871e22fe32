from registry.geo import count_areas, load_geography


def test_geography_has_every_level(db_session):
    assert count_areas() == {"division": 8, "district": 64, "upazila": 557, "union": 5160}


def test_geography_load_is_idempotent(db_session):
    before = count_areas()
    counts = load_geography()
    assert all(c["inserted"] == 0 and c["updated"] == 0 for c in counts.values())
    assert count_areas() == before


def test_areas_nest_by_code_prefix(db_session):
    from sqlalchemy import select

    from models import Area

    for area in db_session.scalars(select(Area).where(Area.parent_code.is_not(None))):
        assert area.code.startswith(area.parent_code)


def test_union_area_types(db_session):
    from sqlalchemy import func, select

    from models import Area

    rows = dict(
        db_session.execute(
            select(Area.area_type, func.count()).where(Area.level == "union").group_by(Area.area_type)
        ).all()
    )
    assert rows == {1: 4566, 2: 309, 3: 285}


def test_union_area_types_are_remembered_until_the_geography_is_loaded_again(db_session):
    """Each change request validates its union's type: known unions cost no query after the first."""
    from sqlalchemy import event

    from registry.geo import union_area_types

    statements = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    engine = db_session.get_bind().engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        load_geography()  # forgets what earlier tests read
        statements.clear()
        assert union_area_types(["10040915", "99999999", ""]) == {"10040915": 1}
        assert len(statements) == 1
        assert union_area_types(["10040915", "10065106"]) == {"10040915": 1, "10065106": 3}
        assert len(statements) == 1  # every union was read at once
        assert union_area_types(["10040915", "99999999"]) == {"10040915": 1}
        assert len(statements) == 2  # an unknown code is asked again: a newly loaded union is found at once
        load_geography()
        statements.clear()
        assert union_area_types(["10040915"]) == {"10040915": 1}
        assert len(statements) == 1  # read again after a load
    finally:
        event.remove(engine, "before_cursor_execute", count)
