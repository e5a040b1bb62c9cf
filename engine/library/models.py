"""The models the library has seen, by fingerprint."""

from __future__ import annotations

from engine.library.catalogue import Catalogue
from engine.library.records import dumps, loads
from engine.support.clock import utc_now


class ModelRepository(Catalogue):
    """The ``models`` table."""

    def record_model(self, info: dict) -> None:
        """Remember a model the library has seen (``ModelDescription.to_data()``)."""
        row = {"fingerprint": info["fingerprint"], "name": info.get("name"),
               "hidden_size": info.get("hidden_size"), "layers": info.get("layers"),
               "kv_heads": info.get("kv_heads"), "head_dim": info.get("head_dim"),
               "info": dumps(info), "seen": utc_now()}
        with self.transaction():
            self.db["models"].upsert(row, pk="fingerprint")

    def get_model(self, fingerprint: str) -> dict | None:
        """The recorded model info for a fingerprint, or None."""
        rows = self._rows("SELECT info FROM models WHERE fingerprint = ?", (fingerprint,))
        return loads(rows[0]["info"], {}) if rows else None

    def list_models(self) -> list[dict]:
        """Every recorded model's info, most recently seen first."""
        rows = self._rows("SELECT info FROM models ORDER BY seen DESC")
        return [loads(r["info"], {}) for r in rows]
