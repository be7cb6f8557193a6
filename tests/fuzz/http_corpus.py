"""A generated corpus of bad HTTP requests and hostile bundles, by class of defect.

A request case is (method, path, body): ``body`` is raw bytes, or anything JSON can
write. A bundle case is a mutation of a good bundle's folder, loaded by name. None of
them is valid: each must be answered 4xx.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tests.fuzz.bundle_mutations import BUNDLE_MUTATIONS


@dataclass(frozen=True)
class Request:
    """One bad request."""

    klass: str
    name: str
    method: str
    path: str
    body: Any = None
    raw: bytes | None = None
    """Sent as is (with a JSON content type) instead of ``body``."""

    @property
    def id(self) -> str:
        return f"{self.klass}:{self.name}"


def deep(levels: int) -> str:
    """JSON nested ``levels`` lists deep (a recursion bomb for naive parsers)."""
    return "[" * levels + "]" * levels


RAW_BODIES: dict[str, bytes] = {
    "empty": b"",
    "truncated": b"{",
    "null": b"null",
    "list": b"[]",
    "number": b"123",
    "string": b'"x"',
    "object": b"{}",
    "binary": b"\xff\xfe\x00\x01",
    "nested-100k": deep(100_000).encode(),
    "huge-number": b'{"adapter": 1e400, "inputs": ["a"]}',
    "nan-literal": b'{"adapter": NaN, "inputs": ["a"]}',
    "duplicate-keys": b'{"adapter": "topic", "adapter": 5, "inputs": ["a"]}',
}
REQUESTS: list[Request] = []
ENDPOINTS = ("/v1/predict", "/v1/generate", "/v1/completions", "/v1/chat/completions")
for endpoint in (*ENDPOINTS, "/v1/adapters"):
    for name, raw in RAW_BODIES.items():
        REQUESTS.append(Request("body", f"{endpoint}:{name}", "POST", endpoint, raw=raw))

BAD_ADAPTERS = [5, None, [], {}, "../etc", "x" * 1000, "nope", "to\x00pic", "", "TOPIC"]
BAD_INPUTS: dict[str, Any] = {
    "string": "text",
    "number": 5,
    "null": None,
    "object": {},
    "empty": [],
    "null-item": [None],
    "number-item": [5],
    "bool-item": [True],
    "float-item": [1.5],
    "ints-list": [[1, 2]],
    "empty-list-item": [[]],
    "text-number": [{"text": 5}],
    "text-pair-number": [{"text": "a", "text_pair": 5}],
    "text-pair-list": [{"text": "a", "text_pair": ["x"]}],
    "unknown-keys": [{"foo": "bar"}],
    "question-number": [{"question": 1, "context": "x"}],
    "too-long": ["x" * 20_000],
    "too-many": ["a"] * 1000,
    "nested-object": [{"text": {"text": {"text": "a"}}}],
    "tokens-mixed": [["a", 5, None]],
    "empty-string": [""],
    "whitespace": ["   \n\t "],
}
for number, adapter in enumerate(BAD_ADAPTERS):
    body = {"adapter": adapter, "inputs": ["a good movie"]}
    REQUESTS.append(Request("predict", f"adapter-{number}", "POST", "/v1/predict", body))
for adapter in ("topic", "ner"):
    for name, inputs in BAD_INPUTS.items():
        body = {"adapter": adapter, "inputs": inputs}
        REQUESTS.append(Request("predict", f"{adapter}-{name}", "POST", "/v1/predict", body))
REQUESTS.append(Request("predict", "no-inputs", "POST", "/v1/predict", {"adapter": "topic"}))
REQUESTS.append(Request("predict", "no-adapter", "POST", "/v1/predict", {"inputs": ["a"]}))

BAD_GENERATE: dict[str, dict[str, Any]] = {
    "nothing": {},
    "both": {"prompt": "a", "messages": [{"role": "user", "content": "a"}]},
    "prompt-number": {"prompt": 5},
    "prompt-list": {"prompt": ["a"]},
    "prompt-too-long": {"prompt": "a " * 20_000},
    "messages-empty": {"messages": []},
    "messages-no-content": {"messages": [{"role": "user"}]},
    "messages-content-number": {"messages": [{"role": "user", "content": 5}]},
    "messages-not-objects": {"messages": ["hi"]},
    "temperature-negative": {"prompt": "a", "temperature": -1},
    "temperature-huge": {"prompt": "a", "temperature": 1e9},
    "temperature-string": {"prompt": "a", "temperature": "hot"},
    "top-p-zero": {"prompt": "a", "top_p": 0},
    "top-p-two": {"prompt": "a", "top_p": 2},
    "new-tokens-zero": {"prompt": "a", "max_new_tokens": 0},
    "new-tokens-negative": {"prompt": "a", "max_new_tokens": -5},
    "new-tokens-huge": {"prompt": "a", "max_new_tokens": 10**9},
    "new-tokens-float": {"prompt": "a", "max_new_tokens": 2.5},
    "stop-too-many": {"prompt": "a", "stop": ["x"] * 100},
    "stop-number": {"prompt": "a", "stop": [5]},
    "adapter-unknown": {"prompt": "a", "adapter": "nope"},
    "adapter-classifier": {"prompt": "a", "adapter": "cls"},
    "adapter-number": {"prompt": "a", "adapter": 5},
}
for name, body in BAD_GENERATE.items():
    REQUESTS.append(Request("generate", name, "POST", "/v1/generate", body))
BAD_COMPLETIONS: dict[str, dict[str, Any]] = {
    "no-prompt": {"model": "A"},
    "prompt-number": {"prompt": 5},
    "prompt-empty-list": {"prompt": []},
    "prompt-list-numbers": {"prompt": [1, 2]},
    "prompts-too-many": {"prompt": ["a"] * 1000},
    "model-unknown": {"prompt": "a", "model": "nope"},
    "model-classifier": {"prompt": "a", "model": "cls"},
    "model-number": {"prompt": "a", "model": 5},
    "n-two": {"prompt": "a", "n": 2},
    "max-tokens-zero": {"prompt": "a", "max_tokens": 0},
    "max-tokens-huge": {"prompt": "a", "max_tokens": 10**9},
    "temperature-negative": {"prompt": "a", "temperature": -0.5},
    "top-p-negative": {"prompt": "a", "top_p": -1},
    "stop-object": {"prompt": "a", "stop": {"a": 1}},
    "prompt-too-long": {"prompt": "a" * 20_000},
}
BAD_COMPLETIONS["option-not-implemented"] = {"prompt": "a", "logprobs": 2}
BAD_COMPLETIONS["stream-word"] = {"prompt": "a", "stream": "yes"}
for name, body in BAD_COMPLETIONS.items():
    REQUESTS.append(Request("completions", name, "POST", "/v1/completions", body))
HI = [{"role": "user", "content": "hi"}]
BAD_CHATS: dict[str, dict[str, Any]] = {
    "no-messages": {"model": "A"},
    "messages-empty": {"messages": []},
    "messages-string": {"messages": "hi"},
    "message-no-content": {"messages": [{"role": "user"}]},
    "content-number": {"messages": [{"role": "user", "content": 5}]},
    "content-too-long": {"messages": [{"role": "user", "content": "a" * 20_000}]},
    "model-unknown": {"messages": HI, "model": "nope"},
    "model-classifier": {"messages": HI, "model": "cls"},
    "n-two": {"messages": HI, "n": 2},
    "max-tokens-zero": {"messages": HI, "max_tokens": 0},
    "max-completion-tokens-huge": {"messages": HI, "max_completion_tokens": 10**9},
    "temperature-high": {"messages": HI, "temperature": 9},
    "tools": {"messages": HI, "tools": [{"type": "function"}]},
    "presence-penalty": {"messages": HI, "presence_penalty": 0.5},
    "stream-number": {"messages": HI, "stream": 3},
}
for name, body in BAD_CHATS.items():
    REQUESTS.append(Request("chat", name, "POST", "/v1/chat/completions", body))

BAD_LOAD_NAMES = [5, None, "", ".", "..", "../adapters", "/etc", "a/b", "x" * 100, "nope"]
BAD_LOAD_NAMES += [".hidden", "%2e%2e", "ádapter", "topic", "a b", "-x", "_x", ["topic"]]
for number, name in enumerate(BAD_LOAD_NAMES):
    REQUESTS.append(Request("load", f"name-{number}", "POST", "/v1/adapters", {"name": name}))
REQUESTS.append(Request("load", "no-name", "POST", "/v1/adapters", {}))
for number, name in enumerate(["nope", "..", "%2e%2e%2fetc", "a%20b", "x" * 200, "%00"]):
    REQUESTS.append(Request("delete", f"name-{number}", "DELETE", f"/v1/adapters/{name}"))
for method, path in [
    ("GET", "/v1/predict"),
    ("PUT", "/v1/adapters"),
    ("DELETE", "/health"),
    ("PATCH", "/v1/generate"),
    ("GET", "/v2/predict"),
    ("GET", "/../../etc/passwd"),
    ("GET", "/v1/adapters/topic/../../x"),
]:
    REQUESTS.append(Request("route", f"{method} {path}", method, path))
REQUESTS.append(
    Request("body", "form-encoded", "POST", "/v1/predict", raw=b"adapter=topic&inputs=a")
)

# Bundles loaded over POST /v1/adapters: the CLI corpus's mutations, plus what only a
# server meets (a bundle carrying base weights, one whose head fits another base).
BUNDLES: dict[str, Any] = dict(BUNDLE_MUTATIONS)


def json_bytes(value: Any) -> bytes:
    """``value`` as the JSON a client would send."""
    return json.dumps(value).encode()
