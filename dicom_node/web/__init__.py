"""Web: the console for clinicians and operators, `/metrics` and `/healthz`.

In: the node's database (queue, outbox, results, reviews, history) and the settings. Out:
pages behind a login, release decisions (through `dicom_node.release`), identity decisions,
alert acknowledgements, resends. Owns `web_users`, `web_sessions`, `audit_log`,
`alert_acks`. Served by `qsm-monitor serve` when `[web] enabled` (docs/web-console.md).
"""

from dicom_node.web.accounts import AccountError, Role, add_user, list_users
from dicom_node.web.app import create_app
from dicom_node.web.server import ConsoleServer, console_sessions

__all__ = [
    "AccountError",
    "ConsoleServer",
    "Role",
    "add_user",
    "console_sessions",
    "create_app",
    "list_users",
]
