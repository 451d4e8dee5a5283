#!/usr/bin/env python3
"""Compatibility shim: `python3 oracle/make_golden.py [--out DIR] [--case NAME]...`
is `python3 -m parity_oracle make-golden ...` (parity_oracle/golden.py).

Kept because every golden/*/NOTE.md and golden/README.md name this command:
they are committed bytes, rewritten only when golden/ is regenerated.
"""

import sys

if __name__ == "__main__":
    from parity_oracle.golden import main

    sys.exit(main(prog="oracle/make_golden.py"))
