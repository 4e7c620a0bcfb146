"""Hot model swap on the gateway: a new model file is loaded and checked; a refused one leaves the old in place."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

from plantwatch.contract.batch import ModelRef
from plantwatch.ports import Scorer
from plantwatch.services.gateway import Gateway

log = logging.getLogger(__name__)

#: Builds a scorer from a model file; raises ValueError with a reason a person can act on when the model
#: can't be used (e.g. its feature specification doesn't match this gateway's configuration).
ModelLoader = Callable[[Path], tuple[Scorer, ModelRef]]


class ModelSwapper:
    """Watches one model file (e.g. in the model component's artifact directory) and swaps it in when it changes."""

    def __init__(self, gateway: Gateway, path: Path, loader: ModelLoader) -> None:
        self.gateway = gateway
        self.path = path
        self.loader = loader
        self.loaded_digest: str | None = None
        self.refused: dict[str, str] = {}  # digest -> reason, so a refused file is not retried every check

    def check(self) -> bool:
        """Load the file if it is new; returns whether the gateway now scores with it."""
        try:
            data = self.path.read_bytes()
        except OSError:
            return False
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.loaded_digest or digest in self.refused:
            return False
        try:
            scorer, model = self.loader(self.path)
        except ValueError as exc:
            self.refused[digest] = str(exc)
            log.error("model %s refused, still scoring with %s: %s", self.path, self.gateway.header.model, exc)
            return False
        except Exception as exc:  # a file no check foresaw must not stop the gateway, nor be retried forever
            self.refused[digest] = f"unexpected {type(exc).__name__}: {exc}"
            log.exception("model %s refused, still scoring with %s", self.path, self.gateway.header.model)
            return False
        self.gateway.set_model(scorer, model)
        self.loaded_digest = digest
        log.info("now scoring with model %s %s", model.name, model.version)
        return True
