"""The evaluation report as one document model rendered twice: Markdown and a self-contained HTML page.

A report is a list of blocks (headings, paragraphs, tables, PNG figures). Figures are embedded as data
URIs in both renderings, so the HTML file can be mailed around and the Markdown shown in the UI.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list]
    caption: str = ""


@dataclass
class Figure:
    png: bytes
    caption: str


@dataclass
class Report:
    title: str
    blocks: list = field(default_factory=list)

    def add(self, *blocks) -> Report:
        self.blocks.extend(blocks)
        return self

    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            out.extend(_markdown(block))
            out.append("")
        return "\n".join(out)

    def html(self) -> str:
        body = "\n".join(_html(b) for b in self.blocks)
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head>"
            f"<body><h1>{html.escape(self.title)}</h1>\n{body}\n</body></html>\n"
        )


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _align(value) -> str:
    return ' class="num"' if isinstance(value, (int, float)) else ""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _markdown(block) -> list[str]:
    if isinstance(block, Heading):
        return ["#" * block.level + " " + block.text]
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Table):
        lines = [f"*{block.caption}*", ""] if block.caption else []
        lines.append("| " + " | ".join(block.columns) + " |")
        lines.append("|" + "---|" * len(block.columns))
        lines.extend("| " + " | ".join(_cell(v).replace("|", "\\|") for v in row) + " |" for row in block.rows)
        return lines
    if isinstance(block, Figure):
        return [f"![{block.caption}]({_data_uri(block.png)})", f"*{block.caption}*"]
    raise TypeError(f"unknown report block {block!r}")


def _html(block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Table):
        head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
        rows = "".join(
            "<tr>" + "".join(f"<td{_align(v)}>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in block.rows
        )
        caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(block, Figure):
        return (
            f'<figure><img alt="{html.escape(block.caption)}" src="{_data_uri(block.png)}">'
            f"<figcaption>{html.escape(block.caption)}</figcaption></figure>"
        )
    raise TypeError(f"unknown report block {block!r}")


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
td{overflow-wrap:anywhere}td.num{text-align:right;white-space:nowrap}th{background:#f3f3f3}
caption{font-style:italic;text-align:left}
figure{display:inline-block;margin:0.5em}img{max-width:100%}figcaption{font-size:0.85em;color:#555}
"""
