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


def test_serve_passes_the_worker_shape_to_gunicorn(runner, monkeypatch):
    import web.serve

    seen = []
    monkeypatch.setattr(web.serve._Gunicorn, "run", lambda self: seen.append(self._options))
    assert runner.invoke(args=["serve", "--workers", "3", "--worker-connections", "6"]).exit_code == 0
    assert runner.invoke(args=["serve"]).exit_code == 0
    capped, default = seen
    assert (capped["workers"], capped["threads"], capped["worker_connections"]) == (3, 4, 6)
    assert "worker_connections" not in default  # gunicorn's own default
    refused = runner.invoke(args=["serve", "--worker-connections", "0"])
    assert refused.exit_code == 2 and "--worker-connections" in refused.output
