"""The report as a list of blocks, rendered twice from the same blocks: Markdown for terminals
and Git hosting, and a self-contained HTML page (real tables, inline images, coloured verdict
badges, readable at phone width). What the blocks say is :mod:`advfit.report.document`."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

BADGE_COLOURS = {"holds": "#1a7f37", "does not hold": "#cf222e", "undetermined": "#6e7781"}


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Para:
    text: str


@dataclass(frozen=True)
class Table:
    frame: pd.DataFrame
    #: a column whose cells are verdict words, drawn as badges in HTML
    badge: str | None = None
    #: column -> column of link targets, drawn as links
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Bullets:
    items: tuple[str, ...]


@dataclass(frozen=True)
class Image:
    path: str  # relative to the report's directory
    caption: str


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


Block = Heading | Para | Table | Bullets | Image | Code


def _cell(value) -> str:
    """A table cell's text: floats to 3 decimals, but those under 0.01 (a learning rate such
    as the normal regime's 1e-5) to 3 significant digits, which 3 decimals would show as 0."""
    if isinstance(value, float):
        if pd.isna(value):
            return ""
        return f"{value:.3g}" if 0 < abs(value) < 0.01 else f"{value:.3f}"
    return str(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Para):
            lines += [block.text, ""]
        elif isinstance(block, Table):
            frame = block.frame.copy()
            for column, target in block.links:
                frame[column] = [
                    f"[{_md_escape(str(name))}]({link})"
                    for name, link in zip(frame[column], frame[target], strict=True)
                ]
                frame = frame.drop(columns=target)
            if block.badge:
                frame[block.badge] = [f"**{v}**" for v in frame[block.badge]]
            align = [
                "right" if pd.api.types.is_numeric_dtype(frame[c]) else "left"
                for c in frame.columns
            ]
            frame = frame.map(lambda v: _md_escape(_cell(v)))
            # The cells are formatted already: tabulate must not parse them back into numbers
            # and format them again (3 decimals "0.000" for 1e-4 became "0", "0.500" "0.5").
            text = frame.to_markdown(index=False, disable_numparse=True, colalign=align)
            lines += [text, ""]
        elif isinstance(block, Bullets):
            lines += [*(f"- {item}" for item in block.items), ""]
        elif isinstance(block, Image):
            lines += [f"![{block.caption}]({block.path})", "", f"*{block.caption}*", ""]
        elif isinstance(block, Code):
            lines += [f"```{block.language}", block.text.rstrip(), "```", ""]
    return "\n".join(lines)


def badge(word: str) -> str:
    colour = BADGE_COLOURS.get(word, BADGE_COLOURS["undetermined"])
    return f'<span class="badge" style="background:{colour}">{html.escape(word)}</span>'


def _html_table(block: Table) -> str:
    frame = block.frame.copy()
    for column in frame.columns:
        frame[column] = [html.escape(_cell(v)) for v in frame[column]]
    for column, target in block.links:
        frame[column] = [
            f'<a href="{html.escape(str(link))}">{name}</a>'
            for name, link in zip(frame[column], block.frame[target], strict=True)
        ]
        frame = frame.drop(columns=target)
    if block.badge:
        frame[block.badge] = [badge(html.unescape(v)) for v in frame[block.badge]]
    return '<div class="scroll">' + frame.to_html(index=False, escape=False, border=0) + "</div>"


STYLE = """
body{font-family:system-ui,sans-serif;line-height:1.45;max-width:1100px;margin:auto;padding:0 12px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:8px 0;font-size:14px}
th,td{border-bottom:1px solid #d0d7de;padding:4px 8px;text-align:left;white-space:nowrap}
th{background:#f6f8fa}
.badge{color:#fff;border-radius:10px;padding:1px 9px;font-weight:600;white-space:nowrap}
figure{margin:16px 0}
p,li,h1,h2,h3{overflow-wrap:anywhere}
img{max-width:100%;height:auto}
figcaption{font-size:14px;color:#57606a}
pre{background:#f6f8fa;padding:8px;overflow-x:auto;font-size:12px}
"""


def to_html(blocks: list[Block], out: Path, title: str) -> str:
    """A self-contained page: every image is embedded as a data URI."""
    body: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(_html_table(block))
        elif isinstance(block, Bullets):
            items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
            body.append(f"<ul>{items}</ul>")
        elif isinstance(block, Image):
            data = base64.b64encode((out / block.path).read_bytes()).decode()
            body.append(
                f'<figure><img alt="{html.escape(block.caption)}" '
                f'src="data:image/png;base64,{data}"><figcaption>'
                f"{html.escape(block.caption)}</figcaption></figure>"
            )
        elif isinstance(block, Code):
            body.append(f"<pre>{html.escape(block.text)}</pre>")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
