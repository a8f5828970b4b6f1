"""nft rules as text: the JSON of `nft -j` turned back into nft's own syntax, for evidence."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol


class _Rule(Protocol):
    """What rendering needs from a rule."""

    @property
    def expr(self) -> tuple[Any, ...]: ...

    @property
    def comment(self) -> str | None: ...


def compact_json(value: Any, limit: int = 80) -> str:
    """Compact JSON for messages, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_BARE_META = frozenset({"iifname", "oifname", "iif", "oif"})


def render_rule(rule: _Rule) -> str:
    """The rule in nft's text syntax (best effort; unknown parts as compact JSON)."""
    parts = [_render_stmt(stmt) for stmt in rule.expr]
    text = " ".join(p for p in parts if p)
    if rule.comment:
        text += f' comment "{rule.comment}"'
    return text


def _render_stmt(stmt: Any) -> str:
    if not isinstance(stmt, Mapping) or len(stmt) != 1:
        return compact_json(stmt)
    ((key, body),) = stmt.items()
    if key == "match" and isinstance(body, Mapping):
        left = body.get("left")
        right = _render_value(body.get("right"), quote=_is_ifname(left))
        op = body.get("op", "==")
        op_text = "" if op in ("==", "in") else f"{op} "
        return f"{render_expr(left)} {op_text}{right}"
    if key in ("accept", "drop", "continue", "return"):
        return str(key)
    if key == "reject":
        if isinstance(body, Mapping) and body.get("type"):
            detail = body.get("expr")
            return f"reject with {body['type']}" + (f" {detail}" if detail else "")
        return "reject"
    if key in ("jump", "goto") and isinstance(body, Mapping):
        return f"{key} {body.get('target')}"
    if key == "counter":
        return "counter"
    if key == "log":
        prefix = body.get("prefix") if isinstance(body, Mapping) else None
        return f'log prefix "{prefix}"' if prefix else "log"
    if key == "limit" and isinstance(body, Mapping):
        return f"limit rate {body.get('rate')}/{body.get('per')}"
    if key == "vmap" and isinstance(body, Mapping):
        data = body.get("data")
        if isinstance(data, Mapping) and isinstance(data.get("set"), list):
            items = ", ".join(
                f"{_render_value(p[0])} : {_render_stmt(p[1])}"
                for p in data["set"]
                if isinstance(p, list) and len(p) == 2
            )
            data_text = "{ " + items + " }"
        else:
            data_text = str(data)
        return f"{render_expr(body.get('key'))} vmap {data_text}"
    if key == "xt" and isinstance(body, Mapping):
        return f"xt {body.get('type', 'match')} {body.get('name', '?')}"
    return f"{key} {compact_json(body, 60)}" if body is not None else key


def _is_ifname(left: Any) -> bool:
    return (
        isinstance(left, Mapping)
        and isinstance(left.get("meta"), Mapping)
        and left["meta"].get("key") in ("iifname", "oifname", "iif", "oif")
    )


def render_expr(expr: Any) -> str:
    if isinstance(expr, Mapping) and len(expr) == 1:
        ((kind, body),) = expr.items()
        if kind == "payload" and isinstance(body, Mapping):
            return f"{body.get('protocol')} {body.get('field')}"
        if kind == "meta" and isinstance(body, Mapping):
            key = body.get("key")
            return str(key) if key in _BARE_META else f"meta {key}"
        if kind == "ct" and isinstance(body, Mapping):
            return f"ct {body.get('key')}"
        if kind == "fib" and isinstance(body, Mapping):
            flags = body.get("flags", [])
            flag_text = " . ".join(flags) if isinstance(flags, list) else str(flags)
            return f"fib {flag_text} {body.get('result')}"
        if kind == "concat" and isinstance(body, list):
            return " . ".join(render_expr(b) for b in body)
        if kind == "&" and isinstance(body, list) and len(body) == 2:
            return f"{render_expr(body[0])} & {_render_value(body[1])}"
    return compact_json(expr, 60)


def _render_value(value: Any, *, quote: bool = False) -> str:
    if isinstance(value, str):
        return f'"{value}"' if quote and not value.startswith("@") else value
    if isinstance(value, bool) or value is None:
        return compact_json(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return ",".join(_render_value(v, quote=quote) for v in value)
    if isinstance(value, Mapping) and len(value) == 1:
        ((kind, body),) = value.items()
        if kind == "set":
            items = body if isinstance(body, list) else [body]
            return "{ " + ", ".join(_render_value(v, quote=quote) for v in items) + " }"
        if kind == "prefix" and isinstance(body, Mapping):
            return f"{body.get('addr')}/{body.get('len')}"
        if kind == "range" and isinstance(body, list) and len(body) == 2:
            return f"{_render_value(body[0])}-{_render_value(body[1])}"
        if kind == "concat" and isinstance(body, list):
            return " . ".join(_render_value(v) for v in body)
        if kind == "elem" and isinstance(body, Mapping):
            return _render_value(body.get("val"), quote=quote)
        if kind == "|" and isinstance(body, list):
            return " | ".join(_render_value(v) for v in body)
    return compact_json(value, 60)
