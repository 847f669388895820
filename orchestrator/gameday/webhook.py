"""The game-day summary POSTed as JSON to a webhook (chat, incident tool, CI). A failure is reported, never fatal."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from orchestrator.bounded_io import read_answer
from orchestrator.errors import BackendError
from orchestrator.limits import WEBHOOK_ANSWER_BYTES
from orchestrator.logs import redact


@dataclass(frozen=True)
class WebhookOutcome:
    url: str
    delivered: bool
    status: int | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "delivered": self.delivered, "status": self.status, "error": self.error}


async def post_summary(url: str, summary: dict[str, Any], deadline: float) -> WebhookOutcome:
    """One POST under `deadline` seconds (connect, send, answer); a 2xx answer counts as delivered."""
    body = json.dumps(summary).encode()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=deadline)) as session,
            session.post(url, data=body, headers={"Content-Type": "application/json"}) as response,
        ):
            await read_answer(response, WEBHOOK_ANSWER_BYTES, redact(url))
            if 200 <= response.status < 300:
                return WebhookOutcome(url, True, response.status, None)
            return WebhookOutcome(url, False, response.status, f"answered {response.status} {response.reason}")
    except TimeoutError:
        return WebhookOutcome(url, False, None, f"no answer within {deadline:g}s")
    except (aiohttp.ClientError, OSError, BackendError) as e:
        return WebhookOutcome(url, False, None, f"{type(e).__name__}: {e}")


def deliver(url: str, summary: dict[str, Any], timeout: float) -> WebhookOutcome:
    return asyncio.run(post_summary(url, summary, timeout))
