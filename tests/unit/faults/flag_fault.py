"""A fault for tests: it "breaks" a site by creating a flag file, and heals by removing it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.faults.fault import Fault, HealError


class FlagFault(Fault):
    kind = "test-flag"
    fail_apply = False

    def __init__(self, flag: Path, **kw: Any) -> None:
        super().__init__(str(flag.name), {"flag": str(flag)}, **kw)
        self.flag = flag

    def apply(self) -> None:
        self.flag.write_text(self.id)
        if self.fail_apply:
            raise RuntimeError("half applied")

    def undo_record(self) -> dict[str, Any]:
        return {"flag": str(self.flag)}

    @classmethod
    def heal_from(cls, undo: dict[str, Any]) -> None:
        flag = Path(undo["flag"])
        try:
            flag.unlink(missing_ok=True)
        except OSError as exc:
            raise HealError(f"cannot remove {flag}: {exc}") from None
        if flag.exists():
            raise HealError(f"{flag} still exists")
