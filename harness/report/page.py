"""Self-contained HTML pages: one style, tables, embedded images. No external resource ever:
every image is a data: URL, there is no script, font or stylesheet from elsewhere."""
from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any, Sequence

STYLE = ("body{font-family:system-ui,sans-serif;max-width:1280px;margin:2em auto;padding:0 1em;color:#222}"
         "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;"
         "text-align:left;vertical-align:top;font-size:14px}th{background:#f1f3f5;position:sticky;top:0}"
         "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.id{white-space:nowrap}img{max-width:100%}"
         ".note{background:#fff9db;padding:6px}.bad{background:#ffe3e3}.good{background:#ebfbee}"
         ".same{color:#868e96}.banner{background:#ffe3e3;border:2px solid #c92a2a;padding:8px 12px;margin:1em 0}"
         ".verdict{border-left:6px solid #1971c2;background:#f1f7ff;padding:8px 12px;margin:1em 0}"
         ".verdict.fail{border-color:#c92a2a;background:#fff5f5}"
         ".scroll{overflow-x:auto}pre{background:#f8f9fa;padding:8px;overflow:auto}")

Cell = Any  # a value, or (value, css class)


def esc(value: Any) -> str:
    return html.escape(str(value))


def _cell(tag: str, cell: Cell) -> str:
    if isinstance(cell, tuple) and len(cell) == 2:
        value, cls = cell
        return f'<{tag} class="{esc(cls)}">{value if isinstance(value, Raw) else esc(value)}</{tag}>'
    return f"<{tag}>{cell if isinstance(cell, Raw) else esc(cell)}</{tag}>"


class Raw(str):
    """HTML that is already escaped (a link)."""


def link(href: str, text: str) -> Raw:
    return Raw(f'<a href="{esc(href)}">{esc(text)}</a>')


def table(header: Sequence[str], rows: Sequence[Sequence[Cell]], table_id: str | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell("td", c) for c in r) + "</tr>" for r in rows)
    ident = f' id="{esc(table_id)}"' if table_id else ""
    return f'<div class="scroll"><table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{esc(alt)}" src="data:image/png;base64,{data}"></figure>'


def document(title: str, parts: Sequence[str]) -> str:
    return (f"<!doctype html><html><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    def clean(v: Any) -> str:
        v = v[0] if isinstance(v, tuple) else v
        return str(v).replace("|", "\\|").replace("\n", " ")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
        ["| " + " | ".join(clean(c) for c in r) + " |" for r in rows]


def fmt(value: Any) -> str:
    """Numbers as a reader wants them: thousands separated, floats to one decimal."""
    if value is None:
        return "not detectable"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
