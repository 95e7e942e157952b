"""Caption groups through the OpenAI-compatible chat API that ``vllm serve`` exposes.

One request per group: every image in order (resized data URIs) plus its context, a JSON-schema
``response_format`` (vLLM's guided decoding), and reply validation. Requests run concurrently
(bounded), spread over one or more servers, each with a total timeout; timeouts, refused connections,
429, 5xx and invalid replies are retried with exponential backoff and jitter. A request that still
fails becomes an outcome with ``error`` set (the stage's ``caption_failed`` drop), never an exception.
"""

from __future__ import annotations

import asyncio
import random
import ssl
import threading
from collections.abc import Sequence

import httpx
import openai
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ConfigDict, Field

from captioning.backends.base import CaptionOutcome, GroupRequest
from captioning.backends.pool import Balance, ServerPool
from captioning.prompt import InvalidReply, build_messages, parse_reply, response_format
from captioning.templates import CaptionTemplate


class OpenAIBackendConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_urls: list[str] = Field(min_length=1)  # e.g. http://gpu-1:8000/v1
    model: str
    api_key: str = "EMPTY"  # vLLM accepts anything unless started with --api-key
    max_side: int = Field(default=768, ge=32)  # longer image side sent to the server, in pixels
    concurrency_per_server: int = Field(default=128, ge=1)  # above the server batch: slots refill at once
    balance: Balance = "least_busy"
    timeout_s: float = Field(default=120.0, gt=0)  # whole request, connect to last byte
    max_attempts: int = Field(default=4, ge=1)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_images: int | None = Field(default=None, ge=1)  # the servers' --limit-mm-per-prompt, if known
    length_budget_factor: float = Field(default=2.0, ge=1.0)  # max_tokens of the one retry of a cut reply


class _Retryable(Exception):
    def __init__(self, reason: str, wait_s: float = 0.0) -> None:
        super().__init__(reason)
        self.wait_s = wait_s


class _Final(Exception):
    """A failure that retrying cannot fix (the server refused the request as such)."""


class _Truncated(Exception):
    """The reply stopped at max_tokens: retrying with the same budget would cut it again."""


def _retry_after(err: openai.APIStatusError) -> float:
    try:
        return float(err.response.headers.get("retry-after", 0))
    except ValueError:
        return 0.0


class OpenAICaptioner:
    """The ``openai`` backend; ``caption_groups`` is safe to call once per event loop."""

    name = "openai"
    needs_images = True

    def __init__(self, cfg: OpenAIBackendConfig) -> None:
        self.cfg = cfg
        self.model = cfg.model
        self.pool = ServerPool(cfg.base_urls, cfg.balance)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_lock = threading.Lock()
        self._lanes: dict[asyncio.AbstractEventLoop, asyncio.Queue] = {}

    def template_id(self, template: CaptionTemplate) -> str:
        return template.template_id

    def backoff_s(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random, so retries do not align."""
        delay = min(self.cfg.backoff_max_s, self.cfg.backoff_base_s * 2 ** (attempt - 1))
        return delay / 2 + random.uniform(0, delay / 2)

    def _client(self, url: str, tls: ssl.SSLContext) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            base_url=url,
            api_key=self.cfg.api_key,
            max_retries=0,  # retries are ours: backoff, jitter, and another server
            timeout=self.cfg.timeout_s,
            http_client=httpx.AsyncClient(
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                timeout=self.cfg.timeout_s,
                verify=tls,
            ),
        )

    def caption_sync(self, requests: Sequence[GroupRequest]) -> list[CaptionOutcome]:
        """Caption from any thread on the backend's own event loop: parts an actor runs at once share
        its lanes, so the requests in flight per server stay at ``concurrency_per_server`` in all."""
        with self._loop_lock:
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                threading.Thread(target=self._loop.run_forever, name="caption-loop", daemon=True).start()
        return asyncio.run_coroutine_threadsafe(self.caption_groups(requests), self._loop).result()

    async def caption_groups(self, requests: Sequence[GroupRequest]) -> list[CaptionOutcome]:
        """One task per group; each takes a lane (one connection per server) while its request runs.

        A lane keeps one connection per server: httpcore scans every connection of a pool on each
        request, which at 64 shared connections cost more CPU than the requests themselves. Lanes live
        as long as the event loop that made them (the backend's own loop under ``caption_sync``).
        """
        lanes = self._lanes.get(asyncio.get_running_loop())
        if lanes is None:
            lanes = asyncio.Queue()
            tls = ssl.create_default_context()  # shared: loading CA certificates takes ~50 ms each time
            for _ in range(self.cfg.concurrency_per_server * len(self.cfg.base_urls)):
                lanes.put_nowait([self._client(url, tls) for url in self.cfg.base_urls])
            self._lanes[asyncio.get_running_loop()] = lanes

        async def one(request: GroupRequest) -> CaptionOutcome:
            lane = await lanes.get()
            try:
                return await self._caption_one(request, lane)
            finally:
                lanes.put_nowait(lane)

        try:
            return list(await asyncio.gather(*(one(r) for r in requests)))
        finally:
            if self._loop is None or asyncio.get_running_loop() is not self._loop:
                await self._close(self._lanes.pop(asyncio.get_running_loop()))  # a one-off loop ends here

    @staticmethod
    async def _close(lanes: asyncio.Queue) -> None:
        while not lanes.empty():
            for client in lanes.get_nowait():
                await client.close()

    async def _caption_one(self, request: GroupRequest, clients: list[openai.AsyncOpenAI]) -> CaptionOutcome:
        template = request.template
        n = len(request.images)
        outcome = CaptionOutcome(group_id=request.group_id, template_id=template.template_id)
        if self.cfg.max_images is not None and n > self.cfg.max_images:
            outcome.error = (
                f"group has {n} images but the server accepts at most {self.cfg.max_images} per request "
                "(vllm serve --limit-mm-per-prompt)"
            )
            return outcome
        try:
            # Decoding and resizing is CPU work; a thread keeps the event loop sending.
            messages = await asyncio.to_thread(build_messages, request, self.cfg.max_side)
        except (OSError, ValueError) as err:
            outcome.error = f"image could not be prepared: {err}"
            return outcome
        max_tokens, raised = template.sampling.max_tokens, False
        for attempt in range(1, self.cfg.max_attempts + 1):
            outcome.attempts = attempt
            try:
                outcome.captions, outcome.group_caption, outcome.fields = await self._ask(
                    clients, messages, template, n, outcome, max_tokens
                )
                outcome.error = None
                return outcome
            except _Final as err:
                outcome.error = str(err)
                return outcome
            except _Truncated:
                if raised:
                    budgets = f"{template.sampling.max_tokens}, then {max_tokens}"
                    outcome.error = f"reply cut at max_tokens twice (budgets {budgets})"
                    outcome.truncated = True
                    return outcome
                # one retry with a larger budget, at once: the server is fine, the budget was short
                max_tokens, raised = int(max_tokens * self.cfg.length_budget_factor), True
                continue
            except _Retryable as err:
                outcome.error = f"{err} (after {attempt} attempts)"
                if attempt < self.cfg.max_attempts:
                    await asyncio.sleep(max(self.backoff_s(attempt), min(err.wait_s, self.cfg.backoff_max_s)))
        return outcome

    async def _ask(
        self,
        clients: list[openai.AsyncOpenAI],
        messages: list,
        template: CaptionTemplate,
        n: int,
        outcome: CaptionOutcome,
        max_tokens: int,
    ) -> tuple[list[str], str, dict[str, str]]:
        sampling = template.sampling
        body = {
            "model": self.model,
            "messages": messages,
            "response_format": response_format(template, n),
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": max_tokens,
            **sampling.extra_body,
        }
        with self.pool.server() as index:
            url = self.pool.base_urls[index]
            try:
                async with asyncio.timeout(self.cfg.timeout_s):
                    # client.post, not chat.completions.create: the latter walks every message part
                    # (megabytes of base64) through its type transforms, the client's main CPU cost.
                    reply = await clients[index].post("/chat/completions", cast_to=ChatCompletion, body=body)
            except (TimeoutError, openai.APITimeoutError) as err:
                raise _Retryable(f"timeout after {self.cfg.timeout_s:g}s from {url}") from err
            except openai.APIConnectionError as err:
                self.pool.mark_down(index)
                raise _Retryable(f"cannot reach {url}: {err.__cause__ or err}") from err
            except openai.RateLimitError as err:
                raise _Retryable(f"429 too many requests from {url}", _retry_after(err)) from err
            except openai.InternalServerError as err:
                raise _Retryable(f"{err.status_code} server error from {url}: {err.message}") from err
            except openai.APIStatusError as err:
                # 400 for a request the server will never accept (too many images, prompt too long).
                raise _Final(f"server refused the request ({err.status_code}): {err.message}") from err
            except (openai.APIResponseValidationError, ValueError) as err:
                raise _Retryable(f"malformed response from {url}: {err}") from err
            self.pool.mark_up(index)
        if not isinstance(reply, ChatCompletion) or not reply.choices:
            raise _Retryable(f"malformed response from {url}: not a chat completion")
        choice = reply.choices[0]
        outcome.reply = choice.message.content
        if choice.finish_reason == "length":  # even if it parses, its last caption was cut short
            raise _Truncated()
        try:
            return parse_reply(choice.message.content, n, template)
        except InvalidReply as err:
            raise _Retryable(f"invalid reply: {err}") from err
