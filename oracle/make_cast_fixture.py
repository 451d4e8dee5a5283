#!/usr/bin/env python3
"""Compatibility shim: `python3 oracle/make_cast_fixture.py [--out FILE] [--scale N]`
is `python3 -m parity_oracle make-cast-fixture ...` (parity_oracle/cast_fixture.py).

Kept because the committed tests/fixtures/cast_ml_dtypes.safetensors names this
command in its metadata (part of its bytes).
"""

import sys

if __name__ == "__main__":
    from parity_oracle.cast_fixture import main

    sys.exit(main(prog="oracle/make_cast_fixture.py"))
