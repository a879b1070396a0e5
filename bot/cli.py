"""The `butler` command: run the product, migrate, seed, manage staff, check the setup."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from bot.ops_cli import register as register_ops_commands
from bot.settings import Settings
from escalation.cli import sla_app
from handlers.telegram.cli import app as telegram_app
from knowledge.cli import kb_app

app = typer.Typer(
    help="Butler: butler-team customer service for car owners.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
staff_app = typer.Typer(help="Manage staff accounts.", no_args_is_help=True, pretty_exceptions_enable=False)
app.add_typer(staff_app, name="staff")
app.add_typer(kb_app, name="kb")
app.add_typer(telegram_app, name="telegram")
app.add_typer(sla_app, name="sla")


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as exc:  # pydantic reports which BUTLER_ variable is wrong
        typer.secho(f"Configuration error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from exc


def _echo_step(text: str) -> None:
    typer.secho(f"• {text}", fg="cyan")


@app.command()
def migrate(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Apply database migrations."""
    from bot.migrate import upgrade

    settings = _settings()
    _echo_step(f"migrating {_safe_url(settings.database_url)} to {revision}")
    upgrade(settings.database_url, revision)
    _echo_step("database is up to date")


@app.command()
def seed(
    demo: Annotated[bool, typer.Option("--demo", help="demo dealer, staff and knowledge base")] = False,
) -> None:
    """Load demo data (prints the new logins once)."""
    if not demo:
        typer.echo("Nothing to seed: pass --demo.")
        raise typer.Exit(1)
    from bot.migrate import upgrade

    settings = _settings()
    upgrade(settings.database_url)  # seeding a fresh database should just work
    logins = asyncio.run(_seed(settings))
    _print_logins(logins)


async def _seed(settings: Settings) -> list[object]:
    from bot.db import make_engine, make_sessionmaker, session_scope
    from bot.seed import seed_demo

    engine = make_engine(settings.database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            return list(await seed_demo(session))
    finally:
        await engine.dispose()


def _print_logins(logins: list[object]) -> None:
    if not logins:
        typer.echo(
            "Demo staff already exist (passwords were printed when they were created; "
            "reset one with `butler staff passwd USERNAME`)."
        )
        return
    typer.secho("Demo logins (shown once; keep them):", bold=True)
    for login in logins:
        typer.echo(f"  {login.username:<10} {login.password:<14} {login.role:<8} {login.display_name}")  # type: ignore[attr-defined]


def _safe_url(url: str) -> str:
    """A database URL without its password, for output."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}" if ":" in creds else url
    return url


@app.command()
def run(
    demo: Annotated[bool, typer.Option("--demo/--no-demo", help="seed demo data on first start")] = True,
    host: Annotated[str | None, typer.Option(help="bind address (BUTLER_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (BUTLER_PORT)")] = None,
) -> None:
    """Migrate, then serve web chat, console and API with the workers in one process."""
    import uvicorn

    from bot.app import create_app
    from bot.logs import configure_logging
    from bot.migrate import upgrade
    from bot.processes import KEEP_ALIVE_SECONDS

    settings = _settings()
    if host:
        settings.host = host
    if port:
        settings.port = port
    configure_logging(settings, access_log=False)
    _echo_step(f"database: {_safe_url(settings.database_url)}")
    upgrade(settings.database_url)
    _echo_step("migrations applied")
    if demo:
        _print_logins(asyncio.run(_seed(settings)))
    base = f"http://{'127.0.0.1' if settings.host in ('0.0.0.0', '::') else settings.host}:{settings.port}"
    typer.secho("\nButler is starting. Open:", bold=True)
    typer.echo(f"  Customer web chat   {base}/chat")
    typer.echo(f"  Staff console       {base}/console/")
    typer.echo(f"  API docs            {base}/docs")
    typer.echo(f"  Health              {base}/healthz")
    typer.echo(
        f"  Live events bus     {'Redis ' + settings.redis_url if settings.redis_url else 'in-process'}"
    )
    telegram = "off (set BUTLER_TELEGRAM_TOKEN)"
    if settings.telegram_token:
        from handlers.telegram.wiring import telegram_mode

        telegram = f"on, {telegram_mode(settings)} ({settings.telegram_api_base_url})"
    typer.echo(f"  Telegram bot        {telegram}")
    typer.echo("Press Ctrl+C to stop.\n")
    # log_config=None: uvicorn logs through the configured (redacting, text or JSON) handler.
    uvicorn.run(
        create_app(settings, server_process=True),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        log_config=None,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        loop=settings.event_loop,
    )


@staff_app.command("add")
def staff_add(
    username: str,
    name: Annotated[str, typer.Option(help="display name")],
    role: Annotated[str, typer.Option(help="butler|sales|service|factory|lead|manager|admin")],
    languages: Annotated[str, typer.Option(help="comma-separated, e.g. zh-CN,en")] = "zh-CN",
    capacity: Annotated[int, typer.Option(min=1, max=500)] = 20,
    password: Annotated[str | None, typer.Option(help="omit to generate one")] = None,
) -> None:
    """Create a staff account."""
    from bot.teams import admin

    settings = _settings()
    try:
        pw = asyncio.run(
            admin.run_with_session(
                settings,
                admin.add_staff,
                username=username,
                display_name=name,
                role=role,
                languages=languages.split(","),
                capacity=capacity,
                password=password,
            )
        )
    except admin.AdminError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Created {username} ({role}). Password: {pw}")


@staff_app.command("list")
def staff_list() -> None:
    """List staff accounts."""
    from bot.teams import admin

    rows = asyncio.run(admin.run_with_session(_settings(), admin.staff_rows))
    typer.echo(f"{'id':>4} {'username':<12} {'role':<8} {'duty':<5} {'active':<6} {'languages':<12} name")
    for r in rows:
        typer.echo(
            f"{r['id']:>4} {r['username']:<12} {r['role']:<8} {'on' if r['on_duty'] else 'off':<5} "
            f"{'yes' if r['active'] else 'no':<6} {','.join(r['languages']):<12} {r['display_name']}"
        )


@staff_app.command("passwd")
def staff_passwd(
    username: str, password: Annotated[str | None, typer.Option(help="omit to generate one")] = None
) -> None:
    """Set a new password for a staff account (ends their console sessions)."""
    from bot.teams import admin

    try:
        pw = asyncio.run(
            admin.run_with_session(_settings(), admin.set_password, username=username, password=password)
        )
    except admin.AdminError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"New password for {username}: {pw}")


@app.command()
def doctor() -> None:
    """Check configuration, database, Redis and Telegram, and say what is wrong in plain words."""
    from bot.doctor import run_checks

    results = asyncio.run(run_checks(_settings()))
    failed = 0
    for check in results:
        colour = {"ok": "green", "warn": "yellow", "fail": "red"}[check.status]
        typer.secho(f"[{check.status.upper():>4}] {check.name}: {check.detail}", fg=colour)
        failed += check.status == "fail"
    raise typer.Exit(1 if failed else 0)


register_ops_commands(app)  # butler web, butler worker


def main() -> None:
    """Entry point of the `butler` script."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from bot.processes import limit_malloc_arenas

    limit_malloc_arenas()
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
    except (OperationalError, ProgrammingError) as exc:
        typer.secho(f"Database problem: {str(exc.orig)[:200]}", fg="red", err=True)
        typer.secho("Check BUTLER_DATABASE_URL, then run `butler migrate` (or `butler doctor`).", err=True)
        sys.exit(1)


if __name__ == "__main__":  # `python -m bot.cli`, as the benchmarks run it without the entry point
    main()
