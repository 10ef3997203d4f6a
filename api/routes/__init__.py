"""HTTP routes, one module per area."""

from typing import Annotated

from fastapi import Path

# A loan id in a path: the 0x-hex bytes32 or the API id it hashes (printable ASCII, no spaces).
LoanIdPath = Annotated[str, Path(min_length=1, max_length=80, pattern=r"^[\x21-\x7e]+$")]
