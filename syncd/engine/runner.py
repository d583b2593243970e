"""Assembling the daemon from a configuration: transport, API, state, metrics, logs, engine.

``run_daemon`` is ``syncd run``; ``run_once`` is ``syncd once``. ``open_engine`` is the shared
assembly (also used by the demo). Exit codes: 0, 1 (runtime failure), 78 (configuration).
"""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import orjson
from aiohttp import web

import syncd
from syncd import config as config_mod
from syncd import errors
from syncd.core import model, pacing, planner
from syncd.engine import coordination, cycle, daemon, limits, push, state
from syncd.genesys import api as api_mod
from syncd.genesys import auth, notifications, regions, transport
from syncd.obs import logs, metrics

log = logging.getLogger(__name__)

EX_OK = 0
EX_FAILURE = 1
EX_CONFIG = 78

# Endpoint templates the engine calls, pre-initialised in the metrics so rates read 0.
ENDPOINTS = (
    ("GET", api_mod.TRUNKS),
    ("GET", api_mod.SITE_ROUTES),
    ("GET", api_mod.SITE_ROUTE),
    ("PUT", api_mod.SITE_ROUTE),
    ("GET", api_mod.CAMPAIGNS),
    ("GET", api_mod.CAMPAIGN),
    ("PATCH", api_mod.CAMPAIGN),
    ("GET", api_mod.TRUNK_BASES),
    ("GET", api_mod.TRUNK_BASE),
    ("PUT", api_mod.TRUNK_BASE),
    ("GET", api_mod.BU),
    ("GET", api_mod.BU + "/managementunits"),
    ("GET", api_mod.BU + "/activitycodes"),
    ("GET", api_mod.BU + "/weeks/{weekId}/schedules"),
    ("POST", api_mod.SCHEDULE + "/agentschedules/query"),
    ("GET", api_mod.TRUNK),
    ("POST", notifications.CHANNELS),
    ("PUT", notifications.SUBSCRIPTIONS),
)


@dataclass(slots=True)
class Assembly:
    """The parts of one running engine, for the daemon, ``once`` and the demo."""

    cfg: config_mod.Config
    engine: cycle.Engine
    metrics: metrics.Metrics
    transport: transport.Transport
    store: state.AsyncStateStore
    coordinator: coordination.Coordinator | None = None  # None: backend "none"
    push: push.Push | None = None  # None when [notifications] enabled = false


def credentials_of(cfg: config_mod.Config) -> list[auth.Credentials]:
    """Resolve every secret of the pool (``ConfigError`` when one is missing); register each with
    the log redactor before it can reach any log line."""
    out = []
    for i, cred in enumerate(cfg.org.credentials):
        try:
            secret = config_mod.resolve_secret(cred)
        except errors.ConfigError as exc:
            where = "org" if i == 0 else f"org.token_pool[{i - 1}]"
            raise errors.ConfigError([f"{where}: {p}" for p in exc.problems]) from None
        logs.register_secret(secret)
        out.append(auth.Credentials(client_id=cred.client_id, client_secret=auth.Secret(secret)))
    return out


def configure_metrics(
    m: metrics.Metrics,
    cfg: config_mod.Config,
    labels: tuple[str, ...],
    quota: int | None = None,
) -> None:
    """``quota``: what the limiter paces each token by (default: the configured quota)."""
    m.configure(
        groups={g.name: [t.metric_label for t in g.trunks] for g in cfg.groups},
        business_units=list(cfg.schedule.business_units),
        tokens=list(labels),
        kinds=[k.value for k in model.WriteKind],
        endpoints=list(ENDPOINTS),
        quota_per_minute=cfg.rate_limit.requests_per_minute if quota is None else quota,
        max_retry_after_s=cfg.rate_limit.max_retry_after_s,
        retry_reasons=transport.RETRY_REASONS,
        channel_reasons=notifications.REASONS,
    )


@contextlib.asynccontextmanager
async def open_engine(
    cfg: config_mod.Config,
    *,
    m: metrics.Metrics | None = None,
    writer: bool = True,
    window_s: float = 60.0,
) -> AsyncIterator[Assembly]:
    """Build the transport, API client, state store and engine for ``cfg``; close them after.

    ``writer`` (all but a dry run) holds the state file's writer lock throughout: a second
    writer on the same file is refused with ``StateError``. Otherwise the state file is open
    read-only: the engine reads the failover state from it and keeps what it learns in memory.
    ``window_s``: the quota's window (``requests_per_minute`` per that many seconds; the
    benchmarks scale time with it)."""
    m = m or metrics.Metrics(version=syncd.__version__)
    creds = credentials_of(cfg)  # a missing secret fails before anything is opened
    store = state.AsyncStateStore(
        state.StateStore(cfg.state_path, writer=writer, read_only=not writer)
    )
    # The coordinator reads and records its epoch floor synchronously (rare, tiny rows).
    coord = _coordinator(cfg, store.sync, m)  # a dry run, too, draws from the shared budget
    endpoints = regions.Endpoints(api_url=cfg.org.api_base, login_url=cfg.org.login_base)
    tr = transport.Transport.create(
        endpoints,
        creds,
        pacing_config=pacing.PacingConfig(
            quota=cfg.rate_limit.requests_per_minute, window_s=window_s
        ),
        config=transport.TransportConfig(
            total_timeout_s=cfg.rate_limit.timeout_s,
            read_timeout_s=cfg.rate_limit.timeout_s,
            max_attempts=cfg.rate_limit.max_attempts,
            max_retry_after_s=float(cfg.rate_limit.max_retry_after_s),
            retry_budget_ratio=cfg.rate_limit.retry_budget,
        ),
        hook=m.on_request,
        observer=m,
        shared=coord,
    )
    labels = tr.pool.labels
    if coord is not None:
        coord.set_clients({s.label: s.credentials.client_id for s in tr.pool.sources})
    configure_metrics(m, cfg, labels)
    api = api_mod.GenesysApi(tr)
    engine = cycle.Engine(
        cfg,
        api=api,
        store=store,
        observer=m,
        # A reload may add or drop groups and trunks: their label sets follow. The quota is
        # the limiter's (``rate_limit`` takes effect at a restart; the org's limit may be lower).
        on_config=lambda new: configure_metrics(m, new, labels, tr.limiter.config.quota),
        fence=coord,
        # Before the first reads: pace by the org's limit when it is below the configured one.
        prepare=lambda: _adopt_org_limit(cfg, api, tr, coord, m, window_s),
    )
    m.set_status_source(engine.board)  # GET / and /status.json on the metrics listener
    channel = None
    m.set_notifications_enabled(cfg.notifications.enabled)
    if cfg.notifications.enabled:
        n = cfg.notifications
        # Followers subscribe too (they read; only the leader writes): a new leader is current.
        channel = push.Push(
            engine,
            tr,
            timing=notifications.Timing(
                ping_after_s=n.ping_after_s,
                dead_after_s=n.dead_after_s,
                renew_before_s=n.renew_before_s,
            ),
            observer=m,
        )
        pushed = channel
        engine.board.push_state = lambda: {
            "up": pushed.up,
            "channels": len(pushed.channel.links),
            "channels_up": sum(1 for link in pushed.channel.links if link.up),
            "topics": sum(len(link.topics) for link in pushed.channel.links),
        }
    try:
        yield Assembly(
            cfg=cfg,
            engine=engine,
            metrics=m,
            transport=tr,
            store=store,
            coordinator=coord,
            push=channel,
        )
    finally:
        m.set_status_source(None)
        if coord is not None:
            await coord.close()
        await tr.close()
        await store.close()


async def _adopt_org_limit(
    cfg: config_mod.Config,
    api: api_mod.GenesysApi,
    tr: transport.Transport,
    coord: coordination.Coordinator | None,
    m: metrics.Metrics,
    window_s: float,
) -> None:
    """The org's rate limit, read at start, lowers each token's pace and the shared budget."""
    choice = await limits.adopt_org_limit(
        api,
        tr.limiter,
        configured=cfg.rate_limit.requests_per_minute,
        window_s=window_s,
        on_quota=m.set_api_quota,
    )
    if coord is not None:
        coord.budget = limits.shared_budget(
            coord.budget, choice, burst=cfg.coordination.budget_burst
        )


EPOCH_KEY = "coordination:epoch"


def _coordinator(
    cfg: config_mod.Config, store: state.StateStore, m: metrics.Metrics
) -> coordination.Coordinator | None:
    """The Redis coordinator of ``[coordination] backend = "redis"`` (None for "none")."""
    c = cfg.coordination
    if c.backend != "redis" or c.url is None:
        return None
    password = config_mod.resolve_redis_password(c)
    if password is not None:
        logs.register_secret(password)
    floor = store.get_fingerprint(EPOCH_KEY)
    return coordination.Coordinator(
        coordination.connect(c.url, password=password, timeout_s=c.timeout_s),
        key_prefix=c.key_prefix,
        timing=c.timing(),
        budget=coordination.BudgetSettings(
            quota=cfg.rate_limit.requests_per_minute, window_s=60.0, burst=cfg.shared_burst()
        ),
        # The highest epoch this replica has seen: epochs keep rising even when Redis lost
        # its data (restarted without persistence).
        epoch_floor=int(floor) if floor and floor.isdigit() else 0,
        observer=m,
        on_epoch=None  # a reader (a dry run) contends for no lease and writes no state
        if store.read_only
        else lambda epoch: store.set_fingerprint(EPOCH_KEY, str(epoch), now=time.time()),
    )


@contextlib.asynccontextmanager
async def leadership(asm: Assembly, on_elected: Callable[[], None]) -> AsyncIterator[None]:
    """Contend for the leader lease while the context is open (nothing without coordination)."""
    if asm.coordinator is None:
        yield
        return
    asm.coordinator.on_elected = on_elected
    async with coordination.running(asm.coordinator):
        yield


Overrides = tuple[str | None, str | None]  # (--api-url, --login-url)


def load_config(path: str, endpoints: Overrides = (None, None)) -> config_mod.Config:
    """The configuration file with the command line's ``--api-url/--login-url`` applied."""
    return config_mod.override_endpoints(config_mod.load(path), *endpoints)


def _load(path: str, endpoints: Overrides = (None, None)) -> config_mod.Config | int:
    try:
        return load_config(path, endpoints)
    except errors.ConfigError as exc:
        log.error("The configuration %s is invalid: %s", path, "; ".join(exc.problems))
        print(str(exc), file=sys.stderr)
        return EX_CONFIG
    except OSError as exc:
        log.error("The configuration %s cannot be read: %s", path, exc.strerror)
        return EX_CONFIG


async def run_daemon(
    path: str, *, log_level: str = "INFO", endpoints: Overrides = (None, None)
) -> int:
    """``syncd run``: the long-running service."""
    # A SIGHUP before the daemon's own handler is in place (systemctl reload during start-up)
    # would end the process by default; the configuration read below is fresh anyway.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    logs.setup_logging(log_level)
    faulthandler.enable()  # a watchdog kill shows where the loop was stuck
    loaded = _load(path, endpoints)
    if isinstance(loaded, int):
        return loaded
    cfg = loaded
    m = metrics.Metrics(version=syncd.__version__)
    host, _, port = cfg.metrics.listen.rpartition(":")
    try:
        runner: web.AppRunner = await metrics.start_server(
            m, host=host.strip("[]") or "127.0.0.1", port=int(port)
        )
    except OSError as exc:
        log.error("Cannot serve metrics on %s: %s", cfg.metrics.listen, exc.strerror)
        return EX_FAILURE
    try:
        async with open_engine(cfg, m=m) as asm:
            d = daemon.Daemon(
                config_path=path,
                config=cfg,
                work=asm.engine,
                # A reload re-reads the file but keeps the command line's URLs.
                load_config=lambda p: load_config(p, endpoints),
                push=asm.push,
            )
            async with leadership(asm, d.trigger_reconcile):
                return await d.run()
    except errors.ConfigError as exc:
        log.error("Cannot start: %s", "; ".join(exc.problems))
        return EX_CONFIG
    except errors.AuthError as exc:
        log.error(
            "Cannot start: Genesys Cloud refused the credentials (%s). Check the client id, its"
            " secret and the OAuth client's roles.",
            exc,
        )
        return EX_FAILURE
    except errors.StateError as exc:
        log.error("Cannot start: %s", exc)
        return EX_FAILURE
    finally:
        await runner.cleanup()


async def _once_as_leader(asm: Assembly) -> cycle.Outcome | str | None:
    """``syncd once`` beside replicas: write only while holding the lease (one attempt)."""
    coord = asm.coordinator
    assert coord is not None  # noqa: S101 - the caller checked
    await coord.step()
    if not coord.leading():
        return (
            "another replica holds the leader lease (or Redis cannot be reached); nothing"
            " written. Use --dry-run to see the plan."
        )
    async with coordination.running(coord):  # renews while the writes go out
        return await asm.engine.run_once(dry_run=False)


async def run_once(
    path: str,
    *,
    dry_run: bool,
    as_json: bool = False,
    log_level: str = "INFO",
    endpoints: Overrides = (None, None),
    wide: bool = False,
) -> int:
    """``syncd once``: one read-plan-(apply) pass, printing the plan as a table (or, with
    ``as_json``, as ``planner.plan_json``: writes, held writes and groups, problems)."""
    logs.setup_logging(log_level, stream=sys.stderr)
    loaded = _load(path, endpoints)
    if isinstance(loaded, int):
        return loaded
    try:
        async with open_engine(loaded, writer=not dry_run) as asm:
            # A dry run may share the state file with a running daemon: don't touch its trail.
            await asm.engine.start(recover=not dry_run)
            started = time.time()
            outcome: cycle.Outcome | str | None
            if dry_run or asm.coordinator is None:
                outcome = await asm.engine.run_once(dry_run=dry_run)
            else:
                outcome = await _once_as_leader(asm)
            names = asm.engine.names
            problems = asm.engine.problems()
    except errors.ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return EX_CONFIG
    except (errors.ApiError, errors.StateError) as exc:
        print(f"syncd once: {exc}", file=sys.stderr)
        return EX_FAILURE
    if outcome is None:
        print("syncd once: the inputs could not be read; nothing planned", file=sys.stderr)
        return EX_FAILURE
    if isinstance(outcome, str):
        print(f"syncd once: {outcome}", file=sys.stderr)
        return EX_FAILURE
    # An input that could not be read held what it feeds: the plan is partial, and says so.
    for what, why in outcome.unread:
        print(
            f"syncd once: {what} could not be read; what it feeds is held: {why}", file=sys.stderr
        )
    partial = EX_FAILURE if outcome.unread else EX_OK
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(planner.plan_json(outcome.plan, problems)) + b"\n")
        return partial
    print(planner.format_plan(outcome.plan, names=names, wide=wide))
    for problem in problems:
        print(f"problem: {problem}")
    if dry_run:
        print("(dry run: nothing written)")
    elif outcome.report is not None:
        r = outcome.report
        print(
            f"applied {r.applied}, failed {r.failed}, superseded {r.superseded}, "
            f"conflicts {r.conflicts} in {time.time() - started:.1f} s"
        )
        return partial if r.failed == 0 else EX_FAILURE
    return partial
