"""A tiny document model rendered twice: Markdown (images linked from ``figures/``) and one
self-contained HTML page (images embedded as ``data:`` URIs, inline CSS, no scripts, no
external references).

Text may use ``code`` spans in back-quotes, ``**bold**`` and ``*emphasis*`` (Markdown's own
syntax, so ``report.md`` shows it as written); everything else is literal, and nothing inside a
code span is formatted.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?![\s*])([^*]+?)(?<!\s)\*(?![*\w])")
_NUM = re.compile(r"^(—|[+-]?\d[\d.]*( ± [\d.]+)?( s)?)$")

# Width of the page's text column in CSS pixels (body text 16 px); report figures are drawn
# to fit it (glfnet.report.figures), so their text shows at about the size of the prose.
COLUMN_PX = 1100

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: COLUMN_PX;
       margin: 2em auto; padding: 0 1em; color: #111; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; }
h2 { border-bottom: 1px solid #999; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #888; padding: .25em .6em; text-align: right; }
th.l, td.l { text-align: left; }
th { background: #eee; }
caption { caption-side: bottom; font-size: .85em; color: #333; padding-top: .3em; text-align: left; }
code { background: #f2f2f2; padding: 0 .2em; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #ccc; }
figcaption { font-size: .85em; color: #333; }
.note { border-left: 4px solid #555; background: #f6f6f6; padding: .5em 1em; }
.warning { border-left: 6px double #000; background: #eee; padding: .5em 1em; }
""".replace("COLUMN_PX", f"{COLUMN_PX}px")


@dataclass
class Doc:
    """Blocks: ("h", level, text), ("p", text), ("note", text, kind), ("table", header, rows,
    caption), ("img", rel_path, alt, png_bytes, caption)."""

    title: str
    blocks: list[tuple] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", level, text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def note(self, text: str, kind: str = "note") -> None:
        self.blocks.append(("note", text, kind))

    def table(self, header: list[str], rows: list[list], caption: str = "") -> None:
        self.blocks.append(("table", list(header), [[str(c) for c in r] for r in rows], caption))

    def img(self, rel_path: str, alt: str, png: bytes, caption: str = "") -> None:
        self.blocks.append(("img", rel_path, alt, png, caption))


# --------------------------------------------------------------------------- markdown


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _numeric(rows: list[list[str]], i: int) -> bool:
    """Right-align a column whose cells all look like numbers."""
    cells = [r[i] for r in rows if i < len(r)]
    return bool(cells) and all(_NUM.match(c) for c in cells)


def to_markdown(doc: Doc) -> str:
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            out += ["#" * b[1] + " " + b[2], ""]
        elif kind == "p":
            out += [b[1], ""]
        elif kind == "note":
            out += ["> " + line for line in b[1].splitlines()] + [""]
        elif kind == "table":
            _, header, rows, caption = b
            out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            out.append(
                "|" + "|".join("---:" if i and _numeric(rows, i) else "---" for i in range(len(header))) + "|"
            )
            out += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
            out.append("")
            if caption:
                out += [f"*{caption}*", ""]
        elif kind == "img":
            _, rel, alt, _png, caption = b
            out += [f"![{alt}]({rel})", ""]
            if caption:
                out += [f"*{caption}*", ""]
    return "\n".join(out).rstrip() + "\n"


# --------------------------------------------------------------------------- html


def _emphasis(text: str) -> str:
    """Escape, then turn **bold** and *emphasis* into tags (text outside code spans)."""
    t = _BOLD.sub(r"<strong>\1</strong>", html.escape(text, quote=True))
    return _EM.sub(r"<em>\1</em>", t)


def inline_html(text: str) -> str:
    """Escape, then turn `code`, **bold** and *emphasis* into tags."""
    parts = _CODE.split(str(text))  # even: prose, odd: the inside of code spans
    return "".join(
        f"<code>{html.escape(part, quote=True)}</code>" if i % 2 else _emphasis(part)
        for i, part in enumerate(parts)
    )


def _cell(tag: str, numeric: bool, text: str) -> str:
    """A table cell; text cells are left-aligned."""
    return (f"<{tag}>" if numeric else f'<{tag} class="l">') + inline_html(text) + f"</{tag}>"


def to_html(doc: Doc) -> str:
    body = [f"<h1>{inline_html(doc.title)}</h1>"]
    for b in doc.blocks:
        kind = b[0]
        if kind == "h":
            level = min(max(int(b[1]), 2), 6)
            body.append(f"<h{level}>{inline_html(b[2])}</h{level}>")
        elif kind == "p":
            body.append(f"<p>{inline_html(b[1])}</p>")
        elif kind == "note":
            cls = "warning" if b[2] == "warning" else "note"
            body.append(f'<div class="{cls}"><p>{inline_html(b[1])}</p></div>')
        elif kind == "table":
            _, header, rows, caption = b
            parts = ["<table>"]
            if caption:
                parts.append(f"<caption>{inline_html(caption)}</caption>")
            num = [i > 0 and _numeric(rows, i) for i in range(len(header))]
            parts.append(
                "<thead><tr>"
                + "".join(_cell("th", n, h) for n, h in zip(num, header))
                + "</tr></thead><tbody>"
            )
            parts += ["<tr>" + "".join(_cell("td", n, c) for n, c in zip(num, r)) + "</tr>" for r in rows]
            parts.append("</tbody></table>")
            body.append("".join(parts))
        elif kind == "img":
            _, _rel, alt, png, caption = b
            data = base64.b64encode(png).decode("ascii")
            cap = f"<figcaption>{inline_html(caption)}</figcaption>" if caption else ""
            body.append(
                f'<figure><img alt="{html.escape(alt, quote=True)}" '
                f'src="data:image/png;base64,{data}">{cap}</figure>'
            )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(doc.title.replace('`', ''))}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
