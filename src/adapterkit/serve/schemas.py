"""Request and response bodies (pydantic): what /docs shows and what 422 checks."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    model: str
    kind: str
    mode: Literal["batched", "naive"]
    compiled: bool = Field(description="the base runs through torch.compile (serve --compile)")
    precision: str = Field(
        description="what task-head forwards compute in (serve --precision, resolved): "
        "fp32, bf16 or fp16; generation runs fp32"
    )
    adapters: int
    batches: int = Field(description="model calls made for requests so far")
    rows: int
    largest_batch: int
    mixed_batches: int = Field(description="batches that mixed more than one adapter")


class AdapterInfo(BaseModel):
    name: str
    task: str | None = Field(description="task type, e.g. sequence-classification, causal-lm")
    method: str
    labels: list[str]
    size_bytes: int = Field(description="bytes of the bundle folder's files")
    trainable_params: int = Field(description="adapter + head parameters")


class AdapterList(BaseModel):
    adapters: list[AdapterInfo]


class LoadAdapter(BaseModel):
    name: str = Field(description="a bundle folder inside the server's adapters folder")


class Deleted(BaseModel):
    deleted: str


class PredictRequest(BaseModel):
    adapter: str = Field(description="a loaded adapter with a task head")
    inputs: list[Any] = Field(
        min_length=1,
        description="strings, {'text', 'text_pair'} pairs, token lists, or {'question', 'context'}",
        examples=[["Who wrote Hamlet?"]],
    )


class PredictResponse(BaseModel):
    adapter: str
    predictions: list[dict[str, Any]] = Field(
        description="per input, what the task formats: labels with scores, entities, spans"
    )


class ChatMessage(BaseModel):
    role: str
    content: str


class GenerateRequest(BaseModel):
    adapter: str | None = Field(default=None, description="a generation adapter; null = base")
    prompt: str | None = None
    messages: list[ChatMessage] | None = Field(
        default=None, min_length=1, description="chat turns; the tokenizer's template applies"
    )
    max_new_tokens: int | None = Field(
        default=None, ge=1, description="default: 64, or the server's limit when lower"
    )
    temperature: float = Field(default=0.0, ge=0.0, le=5.0, description="0 = greedy")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _one_prompt(self) -> GenerateRequest:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of 'prompt' and 'messages'")
        return self


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class GenerateResponse(BaseModel):
    adapter: str | None
    text: str
    finish_reason: Literal["stop", "length"]
    usage: Usage


class CompletionRequest(BaseModel):
    """OpenAI's legacy completions body. An option this server does not implement
    (``logprobs``, ``presence_penalty``, ...) is refused (422), never ignored."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, description="an adapter name; the base's name, 'base' or null = base"
    )
    prompt: str | list[str]
    max_tokens: int = Field(default=16, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=5.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=1, description="only 1 is supported")
    stream: StrictBool = Field(default=False, description="server-sent events, one per choice")
    user: str | None = Field(default=None, description="accepted and not used")


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: None = None
    finish_reason: Literal["stop", "length"]


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completions body; unimplemented options are refused (422)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(
        default=None, description="an adapter name; the base's name, 'base' or null = base"
    )
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    n: int = Field(default=1, ge=1, le=1, description="only 1 is supported")
    stream: StrictBool = Field(default=False, description="server-sent events")
    user: str | None = Field(default=None, description="accepted and not used")


class ChatChoice(BaseModel):
    index: int
    message: ChatMessage
    finish_reason: Literal["stop", "length"]


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "adapterkit"
    root: str = Field(description="the base model")
    parent: str | None = Field(description="the base, for an adapter; null for the base")


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
