"""The service that owns the image catalog and reports what it serves.

Other services ask it for `.catalog`, which is one immutable `Catalog`; a
reload replaces the object whole, so a reader never sees a partial scan.
"""

from __future__ import annotations

from pathlib import Path

from twisted.application.service import Service
from twisted.logger import Logger

from netboot.nbi.catalog import Catalog, scan_catalog
from netboot.nbi.problems import Severity

log = Logger(namespace="netboot.catalog")


class CatalogService(Service):
    def __init__(self, root: Path) -> None:
        self.root = root
        self.catalog = Catalog(root=root)

    def startService(self) -> None:  # noqa: N802 - Twisted's name
        super().startService()
        self.load()

    def load(self) -> Catalog:
        """Scan the root and publish the new catalog; logs every set and problem."""
        catalog = scan_catalog(self.root)
        for nbi_set in catalog:
            for problem in nbi_set.problems:
                emit = log.warn if problem.severity is Severity.ERROR else log.info
                emit(
                    "{problem}",
                    problem=problem.render(str(self.root)),
                    set=str(nbi_set.path),
                    key=problem.key,
                    severity=str(problem.severity),
                )
            if nbi_set.is_servable and nbi_set.info is not None:
                log.info(
                    "serving image {image_id} {name!r} ({type}) from {set}",
                    image_id=str(nbi_set.image_id),
                    name=nbi_set.info.name,
                    type=str(nbi_set.info.image_type),
                    set=str(nbi_set.path),
                    architectures=list(nbi_set.info.architectures),
                )
        log.info(
            "catalog: {servable} of {total} NBI sets servable from {root}",
            servable=len(catalog.servable),
            total=len(catalog),
            root=str(self.root),
        )
        self.catalog = catalog
        return catalog
