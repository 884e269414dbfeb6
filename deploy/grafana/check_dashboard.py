#!/usr/bin/env python3
"""Check a Grafana dashboard against the metrics dns64d exports.

Usage:
  check_dashboard.py DASHBOARD.json NAMES.txt            names, one per line ('#' comments)
  check_dashboard.py DASHBOARD.json http://HOST:PORT/metrics   scrape a running dns64d

Verifies that DASHBOARD.json is valid JSON with the shape of a Grafana dashboard (panels with
ids, titles, grid positions and targets), extracts every dns64d_[a-z_]+ name from the panel
expressions and the template variables' queries, and checks each one against the exported
names. From a scrape, a name counts as exported when a sample line carries it, or when a
`# TYPE` line declares its family: counter X gives X_total (X itself if X already ends in
_total), histogram X gives X_bucket, X_sum and X_count, summary X gives X, X_sum and X_count,
gauge X gives X. So a labelled family with no samples yet still counts.

Exit status: 0 all used names exported; 1 a panel uses a name that is not exported, or the
dashboard is malformed; 2 usage error or the names could not be read. Standard library only.
"""

import json
import re
import sys
import urllib.request

METRIC = re.compile(r"\bdns64d_[a-z_]+")


def fail_usage(message):
    print(f"check_dashboard: {message}", file=sys.stderr)
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    sys.exit(2)


def walk_panels(panels):
    """Every panel, including those nested in rows."""
    for panel in panels or []:
        yield panel
        yield from walk_panels(panel.get("panels"))


def dashboard_expressions(dashboard, problems):
    """(where, expression) for every query in the dashboard; shape problems go to `problems`."""
    if not isinstance(dashboard, dict):
        problems.append("top level is not an object")
        return []
    for key in ("title", "panels", "schemaVersion"):
        if key not in dashboard:
            problems.append(f"missing top-level key {key!r}")
    found, ids = [], set()
    for panel in walk_panels(dashboard.get("panels")):
        title = panel.get("title")
        where = f"panel {panel.get('id')} {title!r}"
        if not title:
            problems.append(f"{where}: no title")
        if not isinstance(panel.get("id"), int):
            problems.append(f"{where}: no integer id")
        elif panel["id"] in ids:
            problems.append(f"{where}: duplicate id")
        else:
            ids.add(panel["id"])
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
            problems.append(f"{where}: gridPos needs integer h, w, x, y")
        elif grid["x"] + grid["w"] > 24:
            problems.append(f"{where}: wider than the 24-column grid")
        if panel.get("type") == "row":
            continue
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no targets")
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids) or None in ref_ids:
            problems.append(f"{where}: targets need distinct refIds")
        for target in targets:
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                problems.append(f"{where} target {target.get('refId')}: no expr")
                continue
            if expr.count("(") != expr.count(")") or expr.count("{") != expr.count("}"):
                problems.append(f"{where} target {target.get('refId')}: unbalanced brackets")
            found.append((where, expr))
    for variable in (dashboard.get("templating") or {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if isinstance(query, str):
            found.append((f"variable {variable.get('name')!r}", query))
    return found


def names_from_exposition(text):
    """Exported series names from Prometheus / OpenMetrics text."""
    names = set()
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                family, kind = parts[2], parts[3]
                if kind == "counter":
                    names.add(family if family.endswith("_total") else family + "_total")
                elif kind == "histogram":
                    names.update({family + "_bucket", family + "_sum", family + "_count"})
                elif kind == "summary":
                    names.update({family, family + "_sum", family + "_count"})
                else:
                    names.add(family)
            continue
        match = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if match:
            names.add(match.group(0))
    return names


def load_exported(source):
    if re.match(r"https?://", source):
        try:
            with urllib.request.urlopen(source, timeout=10) as response:
                text = response.read().decode("utf-8", "replace")
        except OSError as error:
            fail_usage(f"cannot scrape {source}: {error}")
        names = names_from_exposition(text)
        if not names:
            fail_usage(f"{source} returned no metrics")
        return names
    try:
        with open(source, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as error:
        fail_usage(f"cannot read {source}: {error}")
    return {line.split("#", 1)[0].strip() for line in lines} - {""}


def main(argv):
    if len(argv) != 3:
        fail_usage("expected two arguments")
    dashboard_path, source = argv[1], argv[2]
    try:
        with open(dashboard_path, encoding="utf-8") as file:
            dashboard = json.load(file)
    except OSError as error:
        fail_usage(f"cannot read {dashboard_path}: {error}")
    except json.JSONDecodeError as error:
        print(f"FAIL  {dashboard_path} is not valid JSON: {error}")
        return 1
    exported = load_exported(source)

    problems = []
    expressions = dashboard_expressions(dashboard, problems)
    used = {}
    for where, expr in expressions:
        for name in METRIC.findall(expr):
            used.setdefault(name, []).append(where)
    if not used:
        problems.append("no dns64d_ metric in any panel")

    missing = {name: places for name, places in used.items() if name not in exported}
    for problem in problems:
        print(f"FAIL  {problem}")
    for name, places in sorted(missing.items()):
        print(f"FAIL  {name} is not exported (used by {', '.join(sorted(set(places)))})")
    for name in sorted(set(used) - set(missing)):
        print(f"ok    {name}")
    unused = sorted(n for n in exported if n.startswith("dns64d_") and n not in used)
    if unused:
        print(f"note  exported but on no panel: {', '.join(unused)}")
    panels = sum(1 for p in walk_panels(dashboard.get("panels")) if p.get("type") != "row")
    print(f"{dashboard_path}: {panels} panels, {len(expressions)} queries, {len(used)} metric names, "
          f"{len(missing)} not exported, {len(problems)} other problems")
    return 1 if missing or problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
