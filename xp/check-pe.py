#!/usr/bin/env python3
"""Checks that a built dns64d-xp.exe can load on Windows XP SP3.

Rust labels its Windows targets Windows 10+, and Wine does not enforce the
XP API, so nothing but this static check guards XP compatibility:

- the PE header's OS and subsystem versions are 5.01 (PE32, i686: XP) or
  5.02 (PE32+, x86_64: XP x64 / Server 2003); the XP loader refuses a
  console program whose subsystem version is newer;
- every imported DLL is on the allowlist, and every imported function is
  listed for its DLL in xp/xp-sp3-imports.txt (functions that exist on XP
  SP3). A toolchain or dependency update that pulls in a Vista+ import
  fails here, naming the function.

Reads the file with mingw-w64's objdump (binutils-mingw-w64).
Usage: check-pe.py FILE.exe [--allowlist PATH]
"""

import argparse
import pathlib
import re
import subprocess
import sys


def read_allowlist(path):
    allowed = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2:
            sys.exit(f"{path}:{number}: expected `dll function`, got {line!r}")
        dll, function = parts
        allowed.setdefault(dll.lower(), set()).add(function)
    return allowed


def read_pe(path):
    result = subprocess.run(
        ["x86_64-w64-mingw32-objdump", "-p", str(path)],
        check=True, capture_output=True, text=True,
    )
    header = {}
    imports = {}
    dll = None
    in_entries = False
    for line in result.stdout.splitlines():
        match = re.match(r"^(Magic|MajorOSystemVersion|MinorOSystemVersion|"
                         r"MajorSubsystemVersion|MinorSubsystemVersion|Subsystem)\s+(\S+)", line)
        if match:
            header[match.group(1)] = match.group(2)
            continue
        match = re.match(r"^\s*DLL Name: (\S+)", line)
        if match:
            dll = match.group(1).lower()
            imports.setdefault(dll, [])
            in_entries = False
            continue
        if dll and re.match(r"^\s*vma:\s+Hint/Ord", line):
            in_entries = True
            continue
        if dll and in_entries:
            match = re.match(r"^\s*[0-9a-f]+\s+(\d+)\s+(\S+)\s*$", line)
            if match:
                imports[dll].append(match.group(2))
                continue
            match = re.match(r"^\s*[0-9a-f]+\s+<none>\s+([0-9a-f]+)\s*$", line)
            if match:  # import by ordinal only
                imports[dll].append(f"#ordinal {int(match.group(1), 16)}")
                continue
            if not line.strip():
                in_entries = False
                dll = None
    return header, imports


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exe", type=pathlib.Path)
    parser.add_argument("--allowlist", type=pathlib.Path,
                        default=pathlib.Path(__file__).with_name("xp-sp3-imports.txt"))
    arguments = parser.parse_args()
    allowed = read_allowlist(arguments.allowlist)
    header, imports = read_pe(arguments.exe)
    problems = []

    magic = header.get("Magic", "")
    if magic == "010b":
        expected, bits = (5, 1), "PE32 (i686)"
    elif magic == "020b":
        expected, bits = (5, 2), "PE32+ (x86_64)"
    else:
        sys.exit(f"{arguments.exe}: not a PE image (Magic {magic!r})")
    for field in ("OSystemVersion", "SubsystemVersion"):
        found = (int(header.get(f"Major{field}", "-1")), int(header.get(f"Minor{field}", "-1")))
        if found != expected:
            problems.append(f"{field} is {found[0]}.{found[1]:02}, expected {expected[0]}.{expected[1]:02} "
                            f"(build.rs sets it; XP refuses newer)")
    if header.get("Subsystem", "").lstrip("0") not in ("3",):
        problems.append(f"Subsystem is {header.get('Subsystem')!r}, expected 3 (Windows CUI, a console program)")

    if not imports:
        problems.append("no imports found (objdump output not understood?)")
    total = 0
    for dll, functions in sorted(imports.items()):
        if dll not in allowed:
            problems.append(f"imports {dll}, which is not on the allowlist ({', '.join(functions)})")
            continue
        for function in functions:
            total += 1
            if function not in allowed[dll]:
                problems.append(f"imports {dll}!{function}, which is not in the XP SP3 allowlist "
                                f"({arguments.allowlist.name}); Windows XP may not have it")

    if problems:
        for problem in problems:
            print(f"{arguments.exe}: {problem}", file=sys.stderr)
        sys.exit(1)
    print(f"{arguments.exe}: {bits}, OS and subsystem version {expected[0]}.{expected[1]:02}, "
          f"{total} imports from {len(imports)} DLLs, all on the XP SP3 allowlist")


if __name__ == "__main__":
    main()
