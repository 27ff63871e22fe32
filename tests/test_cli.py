"""The socreg command line: clear errors and non-zero exits on bad arguments."""


def test_users_create_with_unknown_role_fails(runner):
    result = runner.invoke(
        args=["users", "create", "bob", "--role", "boss", "--password-stdin"], input="long password 1\n"
    )
    assert result.exit_code != 0
    assert "boss" in result.output and "supervisor" in result.output


def test_users_create_with_unknown_area_fails(runner):
    result = runner.invoke(
        args=["users", "create", "bob", "--role", "supervisor", "--area", "77", "--password-stdin"],
        input="long password 1\n",
    )
    assert result.exit_code == 1
    assert "unknown area code '77'" in result.output


def test_users_create_and_token(runner, db_session):
    result = runner.invoke(
        args=["users", "create", "carol", "--role", "supervisor", "--area", "30", "--password-stdin"],
        input="long password 1\n",
    )
    assert result.exit_code == 0, result.output
    assert "carol (supervisor; areas: 30)" in result.output
    token = runner.invoke(args=["users", "token", "carol"])
    assert token.exit_code == 0 and token.output.strip().startswith("sr_")
    assert runner.invoke(args=["users", "token", "nobody"]).exit_code == 1


def test_geo_load_twice_changes_nothing(runner):
    result = runner.invoke(args=["geo", "load"])
    assert result.exit_code == 0
    assert "union       5160 in registry (0 inserted, 0 updated, 5160 unchanged)" in result.output
