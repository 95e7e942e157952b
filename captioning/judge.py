"""A blind, position-swapped pairwise judge of two templates' captions, through the caption servers.

Inputs: the openai backend's settings and, per group, its images, per-image page text and two caption
sets. The judge sees "Captions 1" and "Captions 2", never a template name, and every pair is asked twice
with the sets swapped: a set wins a group only when it wins in both orders; a split verdict (a judge that
prefers a position) is a tie. Output per group: 1.0 (the first template wins), 0.0, 0.5, or None when
the judge could not answer. A template that failed a group loses it without a request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass

import openai

from captioning.backends.base import ImageContext
from captioning.backends.openai_http import OpenAIBackendConfig
from captioning.images import to_data_uri
from captioning.prompt import format_context

JUDGE_SYSTEM = (
    "You judge training captions for a model that generates groups of related images. "
    "You compare two caption sets written for the same group of images."
)
JUDGE_QUESTION = (
    "Which caption set is better as training captions for these images: accurate to each image, naming "
    "what the images share (the same subject, typeface or scene) the same way in every caption, and "
    'telling the images apart? Answer with JSON only: {"better": 1} or {"better": 2}.'
)
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"better": {"type": "integer", "enum": [1, 2]}},
    "required": ["better"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class CaptionSet:
    captions: tuple[str, ...]
    group_caption: str


@dataclass(frozen=True)
class Comparison:
    images: tuple[bytes, ...]
    context: tuple[ImageContext, ...]
    a: CaptionSet | None  # None: the template failed this group
    b: CaptionSet | None


def _render(captions: CaptionSet) -> str:
    lines = [f"  image {i}: {c}" for i, c in enumerate(captions.captions, start=1)]
    return "\n".join([*lines, f"  group: {captions.group_caption}"])


def judge_messages(comparison: Comparison, first: CaptionSet, second: CaptionSet, max_side: int) -> list:
    content: list[dict] = [
        {"type": "text", "text": f"What the page says near each image:\n{format_context(comparison.context)}"}
    ]
    for i, data in enumerate(comparison.images, start=1):
        content.append({"type": "text", "text": f"Image {i}:"})
        content.append({"type": "image_url", "image_url": {"url": to_data_uri(data, max_side)}})
    content.append(
        {
            "type": "text",
            "text": f"Captions 1:\n{_render(first)}\nCaptions 2:\n{_render(second)}\n{JUDGE_QUESTION}",
        }
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": content}]


class PairwiseJudge:
    def __init__(self, cfg: OpenAIBackendConfig, max_tokens: int = 16) -> None:
        self.cfg = cfg
        self.max_tokens = max_tokens

    async def _ask(self, client: openai.AsyncOpenAI, messages: list, gate: asyncio.Semaphore) -> int | None:
        body = {
            "model": self.cfg.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": self.max_tokens,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True},
            },
        }
        for _ in range(self.cfg.max_attempts):
            async with gate:
                try:
                    reply = await client.chat.completions.create(**body)
                    better = json.loads(reply.choices[0].message.content or "")["better"]
                except (openai.OpenAIError, ValueError, KeyError, TypeError, IndexError):
                    continue
            if better in (1, 2):
                return better
        return None

    async def _compare(
        self, clients: list[openai.AsyncOpenAI], k: int, comparison: Comparison, gate: asyncio.Semaphore
    ) -> float | None:
        a, b = comparison.a, comparison.b
        if a is None or b is None:
            return None if a is None and b is None else (1.0 if b is None else 0.0)
        forward, backward = await asyncio.gather(
            self._ask(clients[k % len(clients)], judge_messages(comparison, a, b, self.cfg.max_side), gate),
            self._ask(
                clients[(k + 1) % len(clients)], judge_messages(comparison, b, a, self.cfg.max_side), gate
            ),
        )
        if forward is None or backward is None:
            return None
        return {(1, 2): 1.0, (2, 1): 0.0}.get((forward, backward), 0.5)

    async def compare_all(self, comparisons: Sequence[Comparison]) -> list[float | None]:
        clients = [
            openai.AsyncOpenAI(
                base_url=url, api_key=self.cfg.api_key, max_retries=0, timeout=self.cfg.timeout_s
            )
            for url in self.cfg.base_urls
        ]
        gate = asyncio.Semaphore(self.cfg.concurrency_per_server * len(clients))
        try:
            return list(
                await asyncio.gather(*(self._compare(clients, k, c, gate) for k, c in enumerate(comparisons)))
            )
        finally:
            for client in clients:
                await client.close()

    def compare(self, comparisons: Sequence[Comparison]) -> list[float | None]:
        """Per comparison: 1.0 when ``a`` wins both orders, 0.0 when ``b`` does, 0.5 split, None unknown."""
        return asyncio.run(self.compare_all(comparisons))
