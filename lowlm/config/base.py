"""What every config shares: strict models (unknown keys are errors) and a stable digest."""

from __future__ import annotations

import hashlib
import json

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Pipeline(_Strict):
    def digest(self) -> str:
        """Stable hash of the whole config, for tags and cache keys."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
