"""Write docs/spec.md, the spec reference, from clgym_core's models (``--check``: exit 1 if it is stale)."""

from __future__ import annotations

import sys
from pathlib import Path

from clgym_core.spec_reference import render

TARGET = Path(__file__).resolve().parent.parent / "docs" / "spec.md"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET} is stale; run: python scripts/spec_reference.py", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
