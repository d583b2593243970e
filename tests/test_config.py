"""Configuration: every error at once with its key path; shipped files are valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import config, errors
from syncd.core import planner

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[org]
region = "eu_west_1"
client_id = "cid"
secret_env = "SYNCD_TEST_SECRET"

[schedule]
business_units = ["bu"]

[[groups]]
name = "g1"
management_units = ["mu1"]
campaigns = [{ id = "c1", weight = 2 }, { id = "c2" }]
routes = [{ site_id = "s1", id = "r1" }]
trunks = [{ trunk_base_id = "t1", capacity = 10, priority = 1 }]
lines_per_agent = 1.5
max_lines = 50
call_rate = { per_line = 0.5 }
"""


def test_good_file_and_planner_settings() -> None:
    cfg = config.parse(GOOD)
    assert cfg.org.api_base == "https://api.mypurecloud.ie"
    assert cfg.org.login_base == "https://login.mypurecloud.ie"
    assert cfg.rate_limit.requests_per_minute == 300
    assert cfg.metrics.listen == "127.0.0.1:9464"
    settings = cfg.planner_settings()
    assert settings.interval_s == 900
    group = settings.groups[0]
    assert group.campaigns == (
        planner.CampaignSpec(id="c1", weight=2.0),
        planner.CampaignSpec(id="c2", weight=1.0),
    )
    assert group.failed_trunks is planner.FailedTrunks.REMOVE
    assert group.call_rate == planner.CallRateSpec(per_line=0.5)
    with pytest.raises(Exception, match="frozen"):
        cfg.state_path = "x"  # type: ignore[misc]


BAD = """
[org]
client_id = "cid"
colour = "blue"

[rate_limit]
requests_per_minute = 0

[schedule]
business_units = ["bu"]
interval_minutes = 7

[[groups]]
name = "g1"
management_units = ["mu1"]
campaigns = [{ id = "c1", weight = 0 }]
trunks = [{ trunk_base_id = "t1", capacity = 10 }, { trunk_base_id = "t2", capacity = 0 }]
lines_per_agent = 1.0
min_lines = 9
max_lines = 5

[[groups]]
name = "g1"
management_units = ["mu2"]
campaigns = [{ id = "c1" }]
trunks = [{ trunk_base_id = "t1", capacity = "10" }]
lines_per_agent = 1.0
max_lines = 5
failed_trunks = "sometimes"
"""


def test_every_error_with_its_path() -> None:
    with pytest.raises(errors.ConfigError) as info:
        config.parse(BAD)
    problems = "\n".join(info.value.problems)
    for expected in [
        "org.colour: unknown key",
        "rate_limit.requests_per_minute: must be > 0",
        "schedule.interval_minutes: must divide 60",
        "groups[0].campaigns[0].weight: must be > 0",
        "groups[0].trunks[1].capacity: must be > 0",
        "groups[0].min_lines: 9 is greater than max_lines 5",
        "groups[1].name: duplicate group name 'g1'",
        "groups[1].trunks[0].capacity: Input should be a valid integer, got '10'",
        "groups[1].trunks[0].trunk_base_id: t1 already belongs to groups[0].trunks[0]",
        "groups[1].campaigns[0].id: c1 already belongs to groups[0].campaigns[0]",
        "groups[1].failed_trunks: must be 'remove' or 'last', got 'sometimes'",
    ]:
        assert expected in problems
    # (Object-level checks such as "set region or api_url" run once the object's own keys are
    # valid, so org's unknown key hides them in this run.)
    assert len(info.value.problems) == 11


def _problems(text: str) -> tuple[str, ...]:
    with pytest.raises(errors.ConfigError) as info:
        config.parse(text)
    return info.value.problems


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("localhost:99999", "metrics.listen: 'localhost:99999': port 99999 is outside 1-65535"),
        ("localhost:0", "metrics.listen: 'localhost:0': port 0 is outside 1-65535"),
        ("127.0.0.1", "metrics.listen: '127.0.0.1' is not HOST:PORT (e.g. 127.0.0.1:9464"),
        ("no such host:80", "metrics.listen: 'no such host:80': 'no such host' is not a host"),
    ],
)
def test_a_bad_listen_address_is_named_in_words(listen: str, expected: str) -> None:
    (problem,) = _problems(GOOD + f'\n[metrics]\nlisten = "{listen}"\n')
    assert problem.startswith(expected)
    assert "pattern" not in problem  # no raw regular expression


def test_a_retry_budget_of_zero_is_refused_by_name() -> None:
    # The transport cannot build a budget that never refills: check-config says so, not a
    # ValueError at start-up.
    (problem,) = _problems(GOOD + "\n[rate_limit]\nretry_budget = 0.0\n")
    assert problem.startswith("rate_limit.retry_budget: must be > 0")


@pytest.mark.parametrize("listen", ["localhost:9464", "[::1]:9464", "0.0.0.0:65535"])
def test_good_listen_addresses_pass(listen: str) -> None:
    cfg = config.parse(GOOD + f'\n[metrics]\nlisten = "{listen}"\n')
    assert cfg.metrics.listen == listen


def test_bad_urls_and_labels_are_named_in_words() -> None:
    text = GOOD.replace('region = "eu_west_1"', 'api_url = "ftp://x"\nlogin_url = "nope"').replace(
        "priority = 1 }", 'priority = 1, label = "has space" }'
    )
    problems = _problems(text)
    assert (
        "org.api_url: 'ftp://x' is not an http(s) URL (e.g. https://api.mypurecloud.ie)" in problems
    )
    assert (
        "org.login_url: 'nope' is not an http(s) URL (e.g. https://api.mypurecloud.ie)" in problems
    )
    assert any(
        p.startswith("groups[0].trunks[0].label: 'has space' is not a metric label")
        for p in problems
    )
    assert not any("pattern" in p for p in problems)


def test_interval_error_names_the_key() -> None:
    text = GOOD.replace('business_units = ["bu"]', 'business_units = ["bu"]\ninterval_minutes = 25')
    assert _problems(text) == (
        "schedule.interval_minutes: must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60),"
        " got 25",
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "max_lines = 50",
            'max_lines = "50"',
            "groups[0].max_lines: Input should be a valid integer, got '50'",
        ),
        (
            "lines_per_agent = 1.5",
            "lines_per_agent = true",
            "groups[0].lines_per_agent: Input should be a valid number, got True",
        ),
        (
            'client_id = "cid"',
            "client_id = 42",
            "org.client_id: Input should be a valid string, got 42",
        ),
        (
            'business_units = ["bu"]',
            'business_units = "bu"',
            "schedule.business_units: Input should be a valid tuple, got 'bu'",
        ),
        # A group's lists written as a number: the checks across groups raised TypeError
        # (not a ConfigError), which ended a running daemon at SIGHUP.
        (
            "trunks = [{",
            "trunks = 3\nold_trunks = [{",
            "groups[0].trunks: Input should be a valid tuple, got 3",
        ),
        (
            "routes = [{",
            "routes = 1\nold_routes = [{",
            "groups[0].routes: Input should be a valid tuple, got 1",
        ),
        (
            "campaigns = [{",
            "campaigns = 2.5\nold_campaigns = [{",
            "groups[0].campaigns: Input should be a valid tuple, got 2.5",
        ),
    ],
)
def test_type_errors_show_the_bad_value(old: str, new: str, expected: str) -> None:
    assert expected in _problems(GOOD.replace(old, new))


def test_toml_syntax_error_has_line_and_column() -> None:
    with pytest.raises(errors.ConfigError) as info:
        config.parse('[org]\nclient_id = "x"\nregion = \n', source="bad.toml")
    assert info.value.problems == (
        "bad.toml: TOML syntax error: Invalid value (at line 3, column 10)",
    )


def test_secret_resolution(tmp_path: Path) -> None:
    cfg = config.parse(GOOD)
    cred = cfg.org.credentials[0]
    assert config.resolve_secret(cred, {"SYNCD_TEST_SECRET": "s3cret"}) == "s3cret"
    with pytest.raises(errors.ConfigError, match="SYNCD_TEST_SECRET is not set") as info:
        config.check_secrets(cfg, {})
    assert "s3cret" not in str(info.value)
    (tmp_path / "gc").write_text("from-systemd\n")
    file_cred = config.Credential(client_id="c", secret_credential="gc")
    assert (
        config.resolve_secret(file_cred, {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == "from-systemd"
    )
    with pytest.raises(errors.ConfigError, match="CREDENTIALS_DIRECTORY is not set"):
        config.resolve_secret(file_cred, {})
    with pytest.raises(errors.ConfigError, match="cannot read credential"):
        config.resolve_secret(
            config.Credential(client_id="c", secret_credential="nope"),
            {"CREDENTIALS_DIRECTORY": str(tmp_path)},
        )


def test_secret_never_in_the_file() -> None:
    with pytest.raises(errors.ConfigError, match=r"org\.client_secret: unknown key"):
        config.parse(GOOD.replace('secret_env = "SYNCD_TEST_SECRET"', 'client_secret = "oops"'))


def test_demo_config_passes_check_config() -> None:
    cfg = config.load(ROOT / "config" / "demo.toml")
    config.check_secrets(cfg, {"SYNCD_CLIENT_SECRET": "demo-secret"})
    assert [g.name for g in cfg.groups] == ["apac", "americas"]
    assert cfg.org.client_id == "demo-client"


def test_demo_ids_match_the_simulator() -> None:
    from syncd.sim import org as sim_org

    generated = sim_org.generate("small", 1)
    cfg = config.load(ROOT / "config" / "demo.toml")
    mus = {m.id for b in generated.bus for m in b.mus}
    assert {mu for g in cfg.groups for mu in g.management_units} == mus
    assert {t.trunk_base_id for g in cfg.groups for t in g.trunks} == set(generated.trunk_bases)
    assert {c.id for g in cfg.groups for c in g.campaigns} == set(generated.campaigns)
    assert {r.id for g in cfg.groups for r in g.routes} == set(generated.routes)


def test_example_config_is_valid() -> None:
    cfg = config.load(ROOT / "config" / "syncd.example.toml")
    assert cfg.org.region == "eu_west_1"


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "syncd.toml"
    path.write_bytes(b'state_path = "\xff\xfe"\n')
    with pytest.raises(errors.ConfigError) as info:
        config.load(path)
    (problem,) = info.value.problems
    assert "not UTF-8 text (byte 14" in problem


def test_check_config_exits_78_with_every_problem(tmp_path: Path) -> None:
    from syncd import cli

    path = tmp_path / "bad.toml"
    path.write_bytes(b"\xff")
    assert cli.main(["check-config", str(path)]) == 78
    assert cli.main(["check-config", str(tmp_path / "missing.toml")]) == 78
    assert cli.main(["check-config", "config/demo.toml"]) == 0


def test_restart_only_sections_are_named() -> None:
    old = config.load("config/demo.toml")
    same = config.load("config/demo.toml")
    assert config.restart_only_changes(old, same) == []
    moved = old.model_copy(
        update={
            "state_path": "/elsewhere.db",
            "metrics": old.metrics.model_copy(update={"listen": "127.0.0.1:1"}),
            "health": old.health.model_copy(update={"poll_s": 1}),
        }
    )
    # health reloads in place; the state file and the metrics socket need a restart
    assert config.restart_only_changes(old, moved) == ["state_path", "metrics"]


def test_trunk_labels_name_trunks_in_metrics_and_must_be_unique() -> None:
    cfg = config.load("config/demo.toml")
    labels = cfg.trunk_labels()
    assert labels["da598f9f-47b5-4227-a02e-3b5288064455"] == "acme-001"
    text = Path("config/demo.toml").read_text()
    clash = text.replace('label = "globex-003"', 'label = "acme-001"', 1).replace(
        'label = "umbrella-005"', 'label = "no spaces allowed"', 1
    )
    with pytest.raises(errors.ConfigError) as info:
        config.parse(clash)
    problems = "\n".join(info.value.problems)
    assert "groups[0].trunks[1].label: 'acme-001' is already the label of groups[0].trunks[0]" in (
        problems
    )
    assert "groups[0].trunks[2].label" in problems


def test_route_membership_policy_is_explicit_and_checked() -> None:
    # Absent, a route is order-only: syncd never adds a trunk to a route nobody told it to fill.
    group = config.parse(GOOD).planner_settings().groups[0]
    assert group.routes[0].trunks is planner.RouteMembership.ORDER_ONLY
    managed = GOOD.replace('id = "r1" }', 'id = "r1", trunks = "managed" }')
    group = config.parse(managed).planner_settings().groups[0]
    assert group.routes[0].trunks is planner.RouteMembership.MANAGED
    assert group.trunks[0].label == "t1"  # plan tables name trunks by label, else by id
    bad = GOOD.replace(
        'routes = [{ site_id = "s1", id = "r1" }]',
        'routes = [{ site_id = "s1", id = "r1", trunks = "all" }, { site_id = "s1", id = "r1" }]',
    )
    with pytest.raises(errors.ConfigError) as info:
        config.parse(bad)
    assert info.value.problems == (
        "groups[0].routes[0].trunks: must be 'managed' or 'order-only', got 'all'",
        "groups[0].routes[1].id: r1 is already listed as groups[0].routes[0]"
        " (one membership policy per route and group)",
    )


def test_shipped_configs_say_each_routes_policy() -> None:
    for name in ("demo.toml", "syncd.example.toml"):
        text = (ROOT / "config" / name).read_text()
        entries = [line for line in text.splitlines() if line.lstrip().startswith("{ site_id")]
        assert entries, name
        assert all("trunks = " in line for line in entries), name


def _with_coordination(body: str) -> str:
    return GOOD.replace("[[groups]]", f"[coordination]\n{body}\n[[groups]]", 1)


def test_coordination_defaults_to_none_and_redis_needs_a_url() -> None:
    assert config.parse(GOOD).coordination.backend == "none"
    with pytest.raises(errors.ConfigError) as exc:
        config.parse(_with_coordination('backend = "redis"'))
    assert exc.value.problems == ('coordination: url: required with backend = "redis"',)
    cfg = config.parse(
        _with_coordination(
            'backend = "redis"\nurl = "rediss://user@redis.internal:6380/0"\n'
            'password_env = "SYNCD_REDIS_PASSWORD"\nkey_prefix = "org-1"'
        )
    )
    assert cfg.coordination.timing().problems() == []
    assert cfg.shared_burst() == 30


def test_a_redis_password_in_the_url_is_refused_without_being_echoed() -> None:
    with pytest.raises(errors.ConfigError) as exc:
        config.parse(_with_coordination('backend = "redis"\nurl = "redis://u:hunter2@h:6379"'))
    assert "holds a password" in str(exc.value)
    assert "hunter2" not in str(exc.value)


def test_inconsistent_lease_timings_and_burst_are_named() -> None:
    with pytest.raises(errors.ConfigError) as exc:
        config.parse(
            _with_coordination(
                'backend = "redis"\nurl = "redis://h:6379"\nlease_s = 9\nbudget_burst = 299'
            )
        )
    text = str(exc.value)
    assert "lease_s: must exceed renew_deadline_s" in text
    with pytest.raises(errors.ConfigError) as burst:
        config.parse(
            _with_coordination('backend = "redis"\nurl = "redis://h:6379"\nbudget_burst = 299')
        )
    assert "coordination.budget_burst: must be below" in str(burst.value)


def test_the_redis_password_is_checked_like_a_client_secret() -> None:
    cfg = config.parse(
        _with_coordination(
            'backend = "redis"\nurl = "redis://h:6379"\npassword_env = "SYNCD_REDIS_PASSWORD"'
        )
    )
    with pytest.raises(errors.ConfigError) as exc:
        config.check_secrets(cfg, {"SYNCD_TEST_SECRET": "s"})
    assert exc.value.problems == (
        "coordination password: environment variable SYNCD_REDIS_PASSWORD is not set",
    )
    env = {"SYNCD_TEST_SECRET": "s", "SYNCD_REDIS_PASSWORD": "pw"}
    config.check_secrets(cfg, env)
    assert config.resolve_redis_password(cfg.coordination, env) == "pw"
