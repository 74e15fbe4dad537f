"""The engine's SSO endpoints (docs/ovirt-simulator.md section 2): password grant, logout, bearer
checks.

Why exact error shapes: the SDK ignores the HTTP status and reads the JSON keys (`error_code` +
`error` for scope ovirt-app-api), so a wrong key would turn a clear "bad password" into a
confusing parse error on the client.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any


class Sso:
    def __init__(self, username: str, password: str, *, lifetime_s: float = 3600) -> None:
        self.username = username
        self.password = password
        self.lifetime_s = lifetime_s
        self.tokens: dict[str, float] = {}
        self.logins = 0
        self.logouts = 0
        self._lock = threading.Lock()

    def token(self, form: dict[str, str], *, refuse: bool) -> tuple[int, dict[str, Any]]:
        grant = form.get("grant_type", "")
        if grant != "password":
            return 400, {"error_code": "unsupported_grant_type",
                         "error": f"The grant type '{grant}' is not supported."}
        user = form.get("username", "")
        if form.get("scope", "ovirt-app-api") != "ovirt-app-api":
            return 400, {"error": "invalid_scope", "error_description": "Invalid scope."}
        if refuse or user != self.username or form.get("password") != self.password:
            return 400, {"error_code": "access_denied",
                         "error": f"Cannot authenticate user '{user}': The user name or "
                                  "password is incorrect.."}
        token = secrets.token_urlsafe(32)
        expires = time.time() + self.lifetime_s
        with self._lock:
            self.tokens[token] = expires
            self.logins += 1
        return 200, {"access_token": token, "scope": "ovirt-app-api",
                     "exp": str(int(expires * 1000)), "token_type": "bearer"}

    def logout(self, token: str | None) -> None:
        with self._lock:
            if token and self.tokens.pop(token, None) is not None:
                self.logouts += 1

    def valid(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Bearer "):
            return False
        with self._lock:
            expires = self.tokens.get(authorization[len("Bearer "):].strip())
        return expires is not None and expires > time.time()

    def revoke_all(self) -> None:
        with self._lock:
            self.tokens.clear()
