#!/usr/bin/env python3
"""dns64d.toml(5) from README.md: the "Configuration" section's opening paragraphs, its option
table (key | type | default | meaning) and the built-in exclude_ipv4 list, turned into roff.
README is the one source, so the man page cannot disagree with it.

    python3 deploy/package/toml-man.py README.md VERSION > dns64d.toml.5

Exits 1 if the section or the table is missing or a row does not have four cells.
"""
import re
import sys

# Characters README uses that roff spells with an escape (anything else non-ASCII becomes \[uXXXX]).
GLYPHS = {"×": r"\(mu", "–": r"\(en", "—": r"\(em", "§": r"\(sc", "≤": r"\(<=", "≥": r"\(>=",
          "…": "...", "→": r"\(->", "’": "'", "“": r"\(lq", "”": r"\(rq"}


def escape(text, code=False):
    """Plain text to roff: backslashes, minus signs in code, non-ASCII characters."""
    text = text.replace("\\", r"\e")
    if code:
        text = text.replace("-", r"\-")
    return "".join(GLYPHS.get(c, c if ord(c) < 128 else r"\[u%04X]" % ord(c)) for c in text)


def inline(markdown):
    """Markdown inline spans (`code`, **bold**, *italic*, [text](link)) to roff fonts."""
    markdown = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", markdown)
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", markdown)):
        if i % 2:
            out.append(r"\fB" + escape(part, code=True) + r"\fR")
            continue
        part = escape(part)
        part = re.sub(r"\*\*([^*]+)\*\*", r"\\fB\1\\fR", part)
        part = re.sub(r"\*([^*\s][^*]*)\*", r"\\fI\1\\fR", part)
        out.append(part)
    line = "".join(out).strip()
    return "\\&" + line if line.startswith((".", "'")) else line


def section(lines, heading):
    """The lines under `heading` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    try:
        start = lines.index(heading) + 1
    except ValueError:
        sys.exit(f"toml-man.py: README has no heading {heading!r}")
    end, fenced = start, False
    while end < len(lines):
        if lines[end].startswith("```"):
            fenced = not fenced
        m = re.match(r"(#+) ", lines[end])
        if m and not fenced and len(m.group(1)) <= level:
            break
        end += 1
    return lines[start:end]


def blocks(lines):
    """Roff for prose paragraphs and code blocks; tables and headings are left out."""
    out, current, code, fenced = [], [], [], False

    def flush():
        if current:
            out.extend([".PP", inline(" ".join(current))])
            current.clear()

    for line in lines:
        if line.startswith("```"):
            flush()
            if fenced:
                out.extend([".PP", ".nf", ".RS 4"] + [inline_code(c) for c in code] + [".RE", ".fi"])
                code.clear()
            fenced = not fenced
        elif fenced:
            code.append(line)
        elif line.startswith("|") or line.startswith("#") or not line.strip():
            flush()
        else:
            current.append(line.strip())
    flush()
    return out


def inline_code(line):
    """One line of a code block, literal."""
    line = escape(line, code=True)
    return "\\&" + line if line.startswith((".", "'")) else line


def cells(row):
    """The cells of a table row; `|` inside backticks does not split."""
    parts, current, in_code = [], "", False
    for c in row.strip().strip("|"):
        if c == "`":
            in_code = not in_code
        if c == "|" and not in_code:
            parts.append(current.strip())
            current = ""
        else:
            current += c
    parts.append(current.strip())
    return parts


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    readme, version = sys.argv[1], sys.argv[2]
    lines = open(readme, encoding="utf-8").read().splitlines()
    config = section(lines, "## Configuration")
    # up to the complete example file, which the KEYS below describe one by one
    intro = config[:config.index("A complete file with every key:")] if "A complete file with every key:" in config else []
    try:
        header = config.index("| key | type | default | meaning |")
    except ValueError:
        sys.exit("toml-man.py: README's Configuration section has no '| key | type | default | meaning |' table")
    rows = []
    for line in config[header + 2:]:
        if not line.startswith("|"):
            break
        row = cells(line)
        if len(row) != 4:
            sys.exit(f"toml-man.py: a table row without four cells: {line}")
        rows.append(row)
    if not rows:
        sys.exit("toml-man.py: the option table is empty")
    exclude = section(lines, "### Built-in `exclude_ipv4`")

    out = [
        r".\" Generated from README.md by deploy/package/toml-man.py; edit README.md instead.",
        rf'.TH DNS64D.TOML 5 "" "dns64d {escape(version)}" "File Formats"',
        ".SH NAME",
        r"dns64d.toml \- configuration file of the dns64d DNS64 server",
        ".SH SYNOPSIS",
        r"\fI/etc/dns64d/dns64d.toml\fR",
        ".SH DESCRIPTION",
        r"A TOML file read by \fBdns64d \-\-config\fR \fIPATH\fR. Keys with a dot belong to the "
        r"table named before it: \fBupstream.servers\fR is the key \fBservers\fR under "
        r"\fB[upstream]\fR. A key not given keeps its default.",
    ]
    out += blocks(intro)
    out += [".SH KEYS"]
    for key, kind, default, meaning in rows:
        out += [".TP", inline(key), rf"\fItype:\fR {inline(kind)}; \fIdefault:\fR {inline(default)}.", ".br",
                inline(meaning)]
    out += [".SH BUILT-IN EXCLUDE_IPV4"]
    out += blocks(exclude)
    out += [
        ".SH FILES",
        ".TP", r"\fI/etc/dns64d/dns64d.toml\fR",
        r"The configuration of \fBdns64d.service\fR (a conffile, kept on upgrade).",
        ".TP", r"\fI/usr/share/doc/dns64d/examples/\fR",
        "Example configurations: network server, per-host shim, local zone.",
        ".SH SEE ALSO",
        r"\fBdns64d\fR(8), \fBsystemctl\fR(1), RFC 6147, RFC 6052",
    ]
    print("\n".join(out))
    print(f"toml-man.py: {len(rows)} keys from {readme}", file=sys.stderr)


if __name__ == "__main__":
    main()
