"""A tiny document model rendered both as Markdown and as a self-contained HTML page."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 60em; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.6em; border-bottom: 1px solid #eee; }
h3 { font-size: 1.1em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .92em; }
th, td { border: 1px solid #ccc; padding: .3em .7em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.pass { background: #d8f5d8; color: #11661b; font-weight: bold; }
td.fail { background: #fbdcdc; color: #9b1111; font-weight: bold; }
td.na { color: #888; }
p.verdict { font-size: 1.2em; font-weight: bold; padding: .4em .8em; display: inline-block; }
p.verdict.pass { background: #d8f5d8; color: #11661b; }
p.verdict.fail { background: #fbdcdc; color: #9b1111; }
figure { margin: 1em 0 2em; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .92em; color: #444; margin-top: .3em; }
blockquote { border-left: 4px solid #ccc; margin: .6em 0; padding: .2em 1em; color: #444; }
code { background: #f5f5f5; padding: 0 .2em; }
"""

NUMERIC = re.compile(r"^[<>=≤≥ ]*[-+]?\d[\d,.]*(e[-+]?\d+)?( ?[a-zA-Zµ%]+)?$")


@dataclass
class Doc:
    title: str
    blocks: list[tuple] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def para(self, text: str) -> None:
        self.blocks.append(("para", text))

    def verdict(self, passed: bool | None, text: str) -> None:
        self.blocks.append(("verdict", passed, text))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", header, rows))

    def image(self, src: str, alt: str, caption: str) -> None:
        self.blocks.append(("image", src, alt, caption))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", items))

    def links(self, items: list[tuple[str, str]]) -> None:
        self.blocks.append(("links", items))

    def quote(self, text: str) -> None:
        self.blocks.append(("quote", text))


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(doc: Doc) -> str:
    out = [f"# {doc.title}", ""]
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            out += ["#" * block[1] + " " + block[2], ""]
        elif kind == "para":
            out += [block[1], ""]
        elif kind == "verdict":
            out += [f"**{block[2]}**", ""]
        elif kind == "table":
            header, rows = block[1], block[2]
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append("|" + "|".join("---" for _ in header) + "|")
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            out.append("")
        elif kind == "image":
            out += [f"![{block[2]}]({block[1]})", "", f"*{block[3]}*", ""]
        elif kind == "bullets":
            out += [f"- {item}" for item in block[1]] + [""]
        elif kind == "links":
            out += [f"- [{text}]({href})" for text, href in block[1]] + [""]
        elif kind == "quote":
            out += ["> " + block[1], ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _inline(text: str) -> str:
    """Escape text for HTML, turning `code` spans into <code>."""
    parts = str(text).split("`")
    return "".join(
        f"<code>{html.escape(part)}</code>" if i % 2 else html.escape(part) for i, part in enumerate(parts)
    )


def _cell(text: str) -> str:
    text = str(text)
    if text == "PASS":
        return '<td class="pass">PASS</td>'
    if text == "FAIL":
        return '<td class="fail">FAIL</td>'
    if text in ("—", "n/a", ""):
        return f'<td class="na">{html.escape(text)}</td>'
    css = ' class="num"' if NUMERIC.match(text) else ""
    return f"<td{css}>{_inline(text)}</td>"


def to_html(doc: Doc) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{html.escape(doc.title)}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(doc.title)}</h1>",
    ]
    for block in doc.blocks:
        kind = block[0]
        if kind == "heading":
            out.append(f"<h{block[1]}>{_inline(block[2])}</h{block[1]}>")
        elif kind == "para":
            out.append(f"<p>{_inline(block[1])}</p>")
        elif kind == "verdict":
            css = {True: "pass", False: "fail"}.get(block[1], "")
            out.append(f'<p class="verdict {css}">{_inline(block[2])}</p>')
        elif kind == "table":
            out.append("<table>")
            out.append("<tr>" + "".join(f"<th>{_inline(h)}</th>" for h in block[1]) + "</tr>")
            out += ["<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in block[2]]
            out.append("</table>")
        elif kind == "image":
            src, alt = html.escape(block[1], quote=True), html.escape(block[2], quote=True)
            out.append(f'<figure><img src="{src}" alt="{alt}"><figcaption>{_inline(block[3])}</figcaption>'
                       "</figure>")
        elif kind == "bullets":
            out.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "links":
            out.append("<ul>" + "".join(
                f'<li><a href="{html.escape(href, quote=True)}">{html.escape(text)}</a></li>'
                for text, href in block[1]) + "</ul>")
        elif kind == "quote":
            out.append(f"<blockquote>{_inline(block[1])}</blockquote>")
    out += ["</body>", "</html>"]
    return "\n".join(out) + "\n"


def write_doc(doc: Doc, out_dir: Path) -> list[Path]:
    md, page = out_dir / "report.md", out_dir / "report.html"
    md.write_text(to_markdown(doc), encoding="utf-8")
    page.write_text(to_html(doc), encoding="utf-8")
    return [md, page]
