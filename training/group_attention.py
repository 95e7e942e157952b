"""Group attention for stock diffusers transformers (Group Diffusion Transformers, arXiv 2410.15027).

The batch stays one row per image, (B*n, L, C), everywhere in the model, so AdaLN, FFN, positional
embeddings and cross-attention stay per image. Only inside self-attention are the rows of a group
regrouped, so that every image token attends to the tokens of all n images of its group:

- PixArt (self-attn / cross-attn / FFN): the self-attention of (B*n, L, C) runs on (B, n*L, C).
- SD3 and FLUX (joint attention over [x_i; c_i]): a masked joint attention over the group's image and
  text tokens, in FLUX's double-stream blocks (text and image streams apart) and single-stream blocks
  (one [c_i; x_i] sequence per image, split at the text length) alike. Image tokens see every image
  token of the group and their own caption (or every caption of the group with
  `image_sees_other_captions`); text tokens see only their own image and their own text.
  Two implementations that must agree: "mask" (one SDPA call with a boolean mask) and "split" (unmasked
  SDPA calls over gathered keys, one per query set: flash-attention friendly, no mask tensor).

The group size lives on a shared `GroupContext` that every installed processor reads, because diffusers
drops unknown `cross_attention_kwargs` keys: set `context.group_size` before each forward.
Input: a `PixArtTransformer2DModel`, `SD3Transformer2DModel` or `FluxTransformer2DModel`. Output: the
same model, processors swapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import FluxTransformer2DModel, PixArtTransformer2DModel, SD3Transformer2DModel
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from diffusers.models.embeddings import apply_rotary_emb
from diffusers.models.transformers.transformer_flux import _get_qkv_projections

AttentionImpl = Literal["mask", "split"]


@dataclass
class GroupContext:
    """What every group-attention processor of one model reads at call time."""

    group_size: int = 1
    image_sees_other_captions: bool = False
    impl: AttentionImpl = "mask"
    text_len: int = 0  # FLUX: caption tokens at the head of each single-stream row, set at every forward
    enabled: bool = True  # False: every image attends alone (the no-group baseline of an ablation)

    @property
    def attended(self) -> int:
        """Rows that attend to one another: the group size, or 1 with group attention off."""
        return self.group_size if self.enabled else 1

    def groups(self, rows: int) -> int:
        """Number of groups B in a batch of `rows` = B*n image rows; fails loudly on a ragged batch."""
        n = self.group_size
        if n < 1 or rows % n:
            raise ValueError(f"batch of {rows} image rows is not a whole number of groups of {n}")
        return rows // n


#################################################################################
#                      Regrouping: (B*n, ...) rows <-> groups                   #
#################################################################################


def rows_to_group(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B*n, h, L, d) -> (B, h, n*L, d): the tokens of a group's images, concatenated in group order."""
    rows, h, length, d = x.shape
    return x.view(rows // n, n, h, length, d).transpose(1, 2).reshape(rows // n, h, n * length, d)


def group_to_rows(x: torch.Tensor, n: int) -> torch.Tensor:
    """(B, h, n*L, d) -> (B*n, h, L, d): the inverse of `rows_to_group`."""
    b, h, nl, d = x.shape
    return x.view(b, h, n, nl // n, d).transpose(1, 2).reshape(b * n, h, nl // n, d)


#################################################################################
#                 Joint attention of a group (SD3): two implementations         #
#################################################################################


def joint_group_mask(
    n: int, image_len: int, text_len: int, image_sees_other_captions: bool, device: torch.device
) -> torch.Tensor:
    """Boolean (S, S) mask, S = n*L + n*T, over the group sequence [img_0..img_{n-1}, txt_0..txt_{n-1}]."""
    owner = torch.cat(
        [
            torch.arange(n, device=device).repeat_interleave(image_len),
            torch.arange(n, device=device).repeat_interleave(text_len),
        ]
    )
    is_image = torch.cat(
        [
            torch.ones(n * image_len, dtype=torch.bool, device=device),
            torch.zeros(n * text_len, dtype=torch.bool, device=device),
        ]
    )
    same_image = owner[:, None] == owner[None, :]
    image_to_image = is_image[:, None] & is_image[None, :]
    allowed = same_image | image_to_image
    if image_sees_other_captions:
        allowed = allowed | is_image[:, None]
    return allowed


def joint_group_attention_mask(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cq: torch.Tensor,
    ck: torch.Tensor,
    cv: torch.Tensor,
    n: int,
    image_sees_other_captions: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One masked SDPA over the whole group. q/k/v: (B*n, h, L, d), cq/ck/cv: (B*n, h, T, d)."""
    image_len, text_len = q.shape[2], cq.shape[2]
    seq = [
        torch.cat([rows_to_group(a, n), rows_to_group(c, n)], dim=2) for a, c in ((q, cq), (k, ck), (v, cv))
    ]
    mask = joint_group_mask(n, image_len, text_len, image_sees_other_captions, q.device)
    out = F.scaled_dot_product_attention(*seq, attn_mask=mask)  # (B, h, n*L + n*T, d)
    return group_to_rows(out[:, :, : n * image_len], n), group_to_rows(out[:, :, n * image_len :], n)


def joint_group_attention_split(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cq: torch.Tensor,
    ck: torch.Tensor,
    cv: torch.Tensor,
    n: int,
    image_sees_other_captions: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same attention as unmasked SDPA calls, each over exactly the keys its queries may see."""
    # Text queries see their own image and their own text: the stock per-image joint attention.
    text_out = F.scaled_dot_product_attention(cq, torch.cat([k, ck], dim=2), torch.cat([v, cv], dim=2))
    group_k, group_v = rows_to_group(k, n), rows_to_group(v, n)  # (B, h, n*L, d)
    if image_sees_other_captions:
        keys = torch.cat([group_k, rows_to_group(ck, n)], dim=2)
        values = torch.cat([group_v, rows_to_group(cv, n)], dim=2)
        image_out = group_to_rows(F.scaled_dot_product_attention(rows_to_group(q, n), keys, values), n)
    else:
        # Each image row gets the group's image keys plus its own caption's keys: (B*n, h, n*L + T, d).
        keys = torch.cat([group_k.repeat_interleave(n, dim=0), ck], dim=2)
        values = torch.cat([group_v.repeat_interleave(n, dim=0), cv], dim=2)
        image_out = F.scaled_dot_product_attention(q, keys, values)
    return image_out, text_out


JOINT_IMPLS = {"mask": joint_group_attention_mask, "split": joint_group_attention_split}


#################################################################################
#                                  Processors                                   #
#################################################################################


class PixArtGroupAttnProcessor:
    """Self-attention over the concatenated tokens of a group; wraps the stock processor.

    The projections and output layers work token by token, so regrouping the rows before the stock
    processor and splitting after it changes only which keys each query sees.
    """

    def __init__(self, context: GroupContext, inner: object | None = None):
        self.context = context
        self.inner = inner if inner is not None else AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise ValueError("PixArtGroupAttnProcessor is for self-attention (attn1) only")
        rows, length, channels = hidden_states.shape  # (B*n, L, C)
        self.context.groups(rows)
        n = self.context.attended
        groups = rows // n
        grouped = hidden_states.reshape(groups, n * length, channels)  # (B, n*L, C)
        if attention_mask is not None:  # a per-key bias (B*n, 1, L) concatenates along the keys
            attention_mask = attention_mask.reshape(groups, 1, n * length)
        out = self.inner(attn, grouped, None, attention_mask, temb, *args, **kwargs)
        return out.reshape(rows, length, channels)


class SD3GroupJointAttnProcessor:
    """Masked joint attention of a group for SD3 blocks (and image-only group attention for attn2)."""

    def __init__(self, context: GroupContext):
        self.context = context

    def _heads(self, attn: Attention, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], -1, attn.heads, x.shape[-1] // attn.heads).transpose(1, 2)

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *args,
        **kwargs,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if attention_mask is not None:
            raise ValueError("SD3GroupJointAttnProcessor builds its own mask; attention_mask must be None")
        rows, length, _ = hidden_states.shape  # (B*n, L, C)
        self.context.groups(rows)
        n = self.context.attended
        q, k, v = (self._heads(attn, proj(hidden_states)) for proj in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)  # (B*n, h, L, d)

        if encoder_hidden_states is None:  # SD3.5 dual-attention attn2: image tokens only
            out = F.scaled_dot_product_attention(
                rows_to_group(q, n), rows_to_group(k, n), rows_to_group(v, n)
            )
            out = group_to_rows(out, n).transpose(1, 2).reshape(rows, length, -1).to(q.dtype)
            return attn.to_out[1](attn.to_out[0](out))

        cq, ck, cv = (
            self._heads(attn, proj(encoder_hidden_states))
            for proj in (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj)
        )  # (B*n, h, T, d)
        if attn.norm_added_q is not None:
            cq, ck = attn.norm_added_q(cq), attn.norm_added_k(ck)
        joint = JOINT_IMPLS[self.context.impl]
        image_out, text_out = joint(q, k, v, cq, ck, cv, n, self.context.image_sees_other_captions)

        image_out = image_out.transpose(1, 2).reshape(rows, length, -1).to(q.dtype)  # (B*n, L, C)
        text_out = text_out.transpose(1, 2).reshape(rows, cq.shape[2], -1).to(q.dtype)  # (B*n, T, C)
        if not attn.context_pre_only:
            text_out = attn.to_add_out(text_out)
        return attn.to_out[1](attn.to_out[0](image_out)), text_out


class FluxGroupAttnProcessor:
    """FLUX's attention with group attention, for double-stream and single-stream blocks.

    Rotary embeddings are applied per image row exactly as the stock processor does (each image keeps
    its own positions), then the rows' text and image tokens go through the group's joint attention.
    """

    def __init__(self, context: GroupContext):
        self.context = context

    def __call__(
        self,
        attn: torch.nn.Module,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if attention_mask is not None:
            raise ValueError("FluxGroupAttnProcessor builds its own mask; attention_mask must be None")
        self.context.groups(hidden_states.shape[0])
        n = self.context.attended
        q, k, v, cq, ck, cv = _get_qkv_projections(attn, hidden_states, encoder_hidden_states)
        q, k, v = (x.unflatten(-1, (-1, attn.head_dim)) for x in (q, k, v))  # (B*n, S, h, d)
        q, k = attn.norm_q(q), attn.norm_k(k)
        if encoder_hidden_states is None:  # single-stream: each row is [text; image] already
            text_len = self.context.text_len
        else:
            cq, ck, cv = (x.unflatten(-1, (-1, attn.head_dim)) for x in (cq, ck, cv))
            cq, ck = attn.norm_added_q(cq), attn.norm_added_k(ck)
            q, k, v = (torch.cat(pair, dim=1) for pair in ((cq, q), (ck, k), (cv, v)))
            text_len = encoder_hidden_states.shape[1]
        if image_rotary_emb is not None:
            q = apply_rotary_emb(q, image_rotary_emb, sequence_dim=1)
            k = apply_rotary_emb(k, image_rotary_emb, sequence_dim=1)
        q, k, v = (x.transpose(1, 2) for x in (q, k, v))  # (B*n, h, T + L, d)
        text, image = slice(None, text_len), slice(text_len, None)
        image_out, text_out = JOINT_IMPLS[self.context.impl](
            q[:, :, image], k[:, :, image], v[:, :, image], q[:, :, text], k[:, :, text], v[:, :, text],
            n, self.context.image_sees_other_captions,
        )  # fmt: skip
        out = torch.cat([text_out, image_out], dim=2).transpose(1, 2).flatten(2, 3).to(q.dtype)
        if encoder_hidden_states is None:
            return out
        image_out = attn.to_out[1](attn.to_out[0](out[:, text_len:].contiguous()))
        return image_out, attn.to_add_out(out[:, :text_len].contiguous())


def _record_flux_text_len(context: GroupContext):
    """A forward pre-hook: single-stream blocks learn where a row's text ends from the model's input."""

    def hook(module, args, kwargs):
        text = kwargs.get("encoder_hidden_states", args[1] if len(args) > 1 else None)
        context.text_len = text.shape[1]

    return hook


#################################################################################
#                                  Installation                                 #
#################################################################################


def enable_group_attention(
    model: torch.nn.Module,
    group_size: int = 1,
    image_sees_other_captions: bool = False,
    impl: AttentionImpl = "mask",
) -> GroupContext:
    """Install group attention on a stock PixArt or SD3 transformer; returns the shared context."""
    if impl not in JOINT_IMPLS:
        raise ValueError(f"unknown group attention impl {impl!r}; choose one of {sorted(JOINT_IMPLS)}")
    context = GroupContext(group_size, image_sees_other_captions, impl)
    if isinstance(model, PixArtTransformer2DModel):
        for block in model.transformer_blocks:
            inner = block.attn1.processor
            if isinstance(inner, PixArtGroupAttnProcessor):  # installing twice re-uses the stock processor
                inner = inner.inner
            block.attn1.set_processor(PixArtGroupAttnProcessor(context, inner))
    elif isinstance(model, SD3Transformer2DModel):
        for block in model.transformer_blocks:
            block.attn.set_processor(SD3GroupJointAttnProcessor(context))
            if block.attn2 is not None:
                block.attn2.set_processor(SD3GroupJointAttnProcessor(context))
    elif isinstance(model, FluxTransformer2DModel):
        for block in [*model.transformer_blocks, *model.single_transformer_blocks]:
            block.attn.set_processor(FluxGroupAttnProcessor(context))
        for handle in getattr(model, "_group_attention_hooks", []):  # installing twice keeps one hook
            handle.remove()
        hook = model.register_forward_pre_hook(_record_flux_text_len(context), with_kwargs=True)
        model._group_attention_hooks = [hook]
    else:
        raise TypeError(
            "group attention supports PixArtTransformer2DModel, SD3Transformer2DModel and "
            f"FluxTransformer2DModel, not {type(model).__name__}"
        )
    return context


def group_context(model: torch.nn.Module) -> GroupContext:
    """The context installed on `model` by `enable_group_attention` (fails if none was installed)."""
    for module in model.modules():
        processor = getattr(module, "processor", None)
        if isinstance(
            processor, PixArtGroupAttnProcessor | SD3GroupJointAttnProcessor | FluxGroupAttnProcessor
        ):
            return processor.context
    raise ValueError("group attention is not enabled on this model: call enable_group_attention first")
