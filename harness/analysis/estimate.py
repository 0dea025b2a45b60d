"""One shape for every estimate: a value (or None when it cannot be told) with its evidence."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Estimate:
    value: float | int | None
    method: str
    evidence: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why value is None ("not detectable: ...")

    @property
    def detectable(self) -> bool:
        return self.value is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value, "detectable": self.detectable, "method": self.method}
        if self.reason:
            out["reason"] = self.reason
        out.update(self.evidence)
        return out

    @classmethod
    def undetectable(cls, method: str, reason: str, **evidence: Any) -> "Estimate":
        return cls(None, method, evidence, reason)
