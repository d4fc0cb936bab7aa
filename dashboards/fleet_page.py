"""The operator's page of a fleet run: each municipality's status, counts, duration and gate (issue 16).

A self-contained HTML file written beside the fleet summary (``fleet_runs/<id>/fleet.html``),
built from the summary alone: counts and messages, never a pupil id, name or CPR number.
"""

from __future__ import annotations

from typing import Any

import jinja2

#: Danish labels of the fleet's and a municipality's status.
STATUS = {"succeeded": "gennemført", "partial": "delvist gennemført", "failed": "fejlet"}
#: Danish labels of what stopped a municipality.
ERROR_KIND = {"config": "konfigurationen", "data": "en eksportfil", "busy": "en anden kørsel er i gang",
              "error": "uventet fejl"}
#: Danish labels of what was published when the model did not pass the gate.
PUBLISHED = {"rule_list": "regelliste offentliggjort", "no_list": "ingen liste", "model": "modellens liste"}


def render_fleet_page(summary: dict[str, Any]) -> str:
    """The operator's page of one fleet run.

    Args:
        summary: The fleet summary (``pipelines.fleet``).

    Returns:
        The page as HTML (every value escaped).
    """
    env = jinja2.Environment(loader=jinja2.PackageLoader("dashboards", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("fleet_summary.html").render(s=summary, STATUS=STATUS, ERROR_KIND=ERROR_KIND,
                                                         PUBLISHED=PUBLISHED)
