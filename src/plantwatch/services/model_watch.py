"""Hot reload of a promoted model: load and verify it off the scoring path, swap it in between two batches.

Use it in a gateway loop (the local platform wires it around each :class:`Gateway`)::

    watch = ModelWatch(detector, RegistryModelSource(registry, "plant-1.line-1"))
    # every few seconds, off the hot path (a thread or asyncio.to_thread): check, load and verify
    watch.poll()
    # in the gateway loop, before each step: swap at a batch boundary if a model is staged
    watch.apply(gateway)
    gateway.step(now_ms)

``apply`` first seals the readings already scored into batches stamped with the old model, then swaps the
detector's forest and the gateway's batch header together, so every reading is scored once, by one model,
and lands in a batch that names that model. Feature windows are kept (same feature specification).
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from plantwatch.contract.batch import ModelRef
from plantwatch.domain.decision import AnomalyDetector, check_model
from plantwatch.models.forest import ForestModel
from plantwatch.models.registry import ModelRegistry
from plantwatch.services.gateway import Gateway

log = logging.getLogger(__name__)


class ModelSource(Protocol):
    """Where the model a gateway should run comes from."""

    def current(self) -> tuple[str, str] | None:
        """(version, SHA-256) of the model that should run now, or None if there is none."""
        ...

    def load(self, version: str, sha256: str) -> ForestModel:
        """Load and verify that model (raises if it is altered or missing)."""
        ...


class RegistryModelSource:
    """The champion of one model name in a registry (local folder or S3)."""

    def __init__(self, registry: ModelRegistry, name: str) -> None:
        self.registry = registry
        self.name = name

    def current(self) -> tuple[str, str] | None:
        """The champion's version and SHA-256."""
        entry = self.registry.champion(self.name)
        return None if entry is None else (entry.version, entry.sha256)

    def load(self, version: str, sha256: str) -> ForestModel:
        """The champion's verified artifact."""
        model = self.registry.load(self.name, version)
        entry = self.registry.entry(self.name, version)
        if entry.sha256 != sha256:
            raise ValueError(f"{self.name} v{version}: registry SHA-256 changed while loading")
        return model


class ModelWatch:
    """Stages a newly promoted model (``poll``) and swaps it in at a batch boundary (``apply``)."""

    def __init__(self, detector: AnomalyDetector, source: ModelSource) -> None:
        self.detector = detector
        self.source = source
        self._lock = threading.Lock()
        self._pending: ForestModel | None = None
        self._seen: tuple[str, str] | None = None
        #: the champion last refused: logged once, tried again only when the champion changes
        self._refused: tuple[str, str] | None = None
        model = detector.model
        if model is not None:
            self._seen = (model.info.version, "")

    @property
    def pending(self) -> ModelRef | None:
        """The staged model, if one waits for the next batch boundary."""
        with self._lock:
            return None if self._pending is None else self._pending.ref

    def poll(self) -> bool:
        """Check the source; load, verify and stage a new model. Never raises: on error the current model stays.
        A champion that fails verification (integrity, SHA-256, features) is logged once, not at every poll; other
        errors (a disk or S3 hiccup) are retried at the next poll."""
        current = None
        try:
            current = self.source.current()
            if current is None or current in (self._seen, self._refused):
                return False
            model = self.source.load(*current)
            check_model(model, self.detector.spec)
        except ValueError:  # ModelIntegrityError, ModelMismatchError, a SHA-256 that changed: it won't get better
            log.exception("model watch: new model refused; the current one keeps scoring")
            self._refused = current
            return False
        except Exception:
            log.exception("model watch: new model not loaded; the current one keeps scoring, retrying")
            return False
        with self._lock:
            self._pending = model
            self._seen = current
        log.info("model staged", extra={"model": model.info.name, "version": model.info.version})
        return True

    def apply(self, gateway: Gateway) -> ModelRef | None:
        """Swap in the staged model between batches: seal what the old one scored, then switch both together."""
        with self._lock:
            model = self._pending
        if model is None:
            return None
        # Seal first: if that fails (a locked spool, a disk error) the model stays staged for the next boundary.
        gateway.seal()
        with self._lock:
            if self._pending is model:
                self._pending = None
        self.detector.swap_model(model)
        gateway.adopt(self.detector, model.ref)  # the header and the alert counts follow the model, no I/O
        return model.ref
