"""Experiment reports for the product team (``product`` or ``admin`` tokens).

    GET /api/experiments/{name}   the analysis as JSON (``dj report experiment NAME --format json``)
    GET /experiments/{name}       the same as an HTML page with its plots embedded

The analysis reads the ledger in an executor and is kept CACHE_S (dj.experiments.service).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from dj.auth import require
from dj.experiments.definition import NAME
from dj.experiments.report import as_html
from dj.experiments.service import ExperimentReports, UnknownExperiment
from dj.server.keys import ACCESS, STATION
from dj.server.pages import generated_policy

REPORTS = web.AppKey("experiment_reports", ExperimentReports)
# name -> (the analysis, its page): drawing the plots costs more than the analysis, so a page is
# drawn again only when the analysis it shows was renewed
PAGES = web.AppKey("experiment_pages", dict[str, tuple[dict[str, Any], str]])
ROLES = ("product", "admin")

routes = web.RouteTableDef()


def setup(app: web.Application) -> None:
    station = app[STATION]
    app[REPORTS] = ExperimentReports(station.experiments.experiments, station.ledger)
    app[PAGES] = {}
    app.add_routes(routes)


def _not_found(message: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(text=json.dumps({"error": message}), content_type="application/json")


async def _analysis(request: web.Request) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, require, request, request.app[ACCESS].tokens, *ROLES)
    name = request.match_info["name"]
    reports = request.app[REPORTS]
    if not NAME.fullmatch(name):
        raise _not_found("unknown experiment; known: " + (", ".join(reports.names) or "none"))
    try:
        return await loop.run_in_executor(None, reports.analysis, name)
    except UnknownExperiment as exc:
        raise _not_found(str(exc)) from None


@routes.get("/api/experiments/{name}")
async def experiment_json(request: web.Request) -> web.Response:
    return web.json_response(await _analysis(request))


@routes.get("/experiments/{name}")
async def experiment_page(request: web.Request) -> web.Response:
    report = await _analysis(request)
    drawn = request.app[PAGES].get(request.match_info["name"])
    if drawn is not None and drawn[0] is report:
        page = drawn[1]
    else:
        page = await asyncio.get_running_loop().run_in_executor(None, as_html, report)
        request.app[PAGES][request.match_info["name"]] = (report, page)
    return web.Response(text=page, content_type="text/html", headers={
        "Content-Security-Policy": generated_policy(page),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    })
