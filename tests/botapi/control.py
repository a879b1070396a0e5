"""HTTP control API for load generators that run the server in another process."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from tests.botapi.server import BotApiServer


def add_control_routes(app: web.Application, server: BotApiServer) -> None:
    """Mount /_control/*: make users write, queue raw updates, read counters."""

    async def user_text(request: web.Request) -> web.Response:
        """POST /_control/users/<id>/text {"text", "first_name"?, "token"?}: a user writes to the bot."""
        data = await request.json()
        user_id = int(request.match_info["user_id"])
        known = server.world.users.get(user_id)
        name = data.get("first_name") or (known.first_name if known else "User")
        client = server.user(user_id, name, bot=data.get("token"))
        message = await client.send_text(str(data["text"]))
        return web.json_response({"ok": True, "result": message})

    async def raw_update(request: web.Request) -> web.Response:
        """POST /_control/updates?token=...: queue a raw update."""
        update = server.push_raw_update(await request.json(), bot=request.query.get("token"))
        return web.json_response({"ok": True, "result": update})

    async def stats(request: web.Request) -> web.Response:
        """GET /_control/stats: counters for benchmarks."""
        bots = {
            b.user.username or str(b.id): {
                "pending_updates": len(b.queue),
                "sent": sum(len(v) for v in b.sent.values()),
                "webhook": b.webhook.url if b.webhook else None,
            }
            for b in server.world.bots.values()
        }
        result = {
            "calls": dict(Counter(c.method for c in server.calls())),
            "bots": bots,
            "rate_limits": server.rate_limit_stats,
            "delivered": len(server.updates_delivered),
            "webhook_attempts": len(server.delivery_attempts()),
            "internal_errors": len(server.internal_errors),
        }
        return web.json_response({"ok": True, "result": result})

    app.router.add_post("/_control/users/{user_id}/text", user_text)
    app.router.add_post("/_control/updates", raw_update)
    app.router.add_get("/_control/stats", stats)
