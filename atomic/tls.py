"""TLS contexts, and the start-up check of every certificate a setting names.

Three uses, each with its own pair of settings:

* **HTTPS and WSS** on the serving ports (``ATOMIC_TLS_CERT``, ``ATOMIC_TLS_KEY``): Hypercorn's
  own TLS, with HTTP/2 offered by ALPN (:data:`ALPN`).
* **The agent's TCP transport**: the agent serves TLS with ``ATOMIC_IPC_TLS_CERT`` and
  ``ATOMIC_IPC_TLS_KEY``; the server checks the agent's certificate against
  ``ATOMIC_IPC_TLS_CA`` (the system's CAs when unset). The token (``ATOMIC_IPC_TOKEN``)
  authenticates the client; TLS authenticates the agent and keeps both secret.
* **The command-line client** (``--ca`` / ``ATOMIC_CA_FILE``): :func:`client_context`.

:func:`problems` loads each named file once at start-up, so a missing file, a key that is
not the certificate's or a file that is not PEM stops start-up with one line naming the
variable, instead of failing at the first connection.
"""

from __future__ import annotations

import ssl

#: What the HTTP server offers by ALPN, best first.
ALPN = ("h2", "http/1.1")


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server's side of TLS (the agent's on its TCP transport; Hypercorn builds its own
    from the same files, adding ALPN)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


def client_context(ca: str | None = None) -> ssl.SSLContext:
    """A verifying client context: the server's certificate must chain to ``ca`` (a PEM
    bundle), or to the system's CAs when ``ca`` is None."""
    return ssl.create_default_context(cafile=ca)


# --- the start-up check --------------------------------------------------------------------


def _unreadable(var: str, path: str) -> str | None:
    try:
        with open(path, "rb"):
            pass
    except FileNotFoundError:
        return f"{var}={path!r}: no such file"
    except IsADirectoryError:
        return f"{var}={path!r}: a directory, not a PEM file"
    except PermissionError:
        return f"{var}={path!r}: permission denied (the server cannot read it)"
    except OSError as exc:
        return f"{var}={path!r}: cannot read it: {exc.strerror or exc}"
    return None


def _ssl_reason(exc: ssl.SSLError) -> str:
    reason = getattr(exc, "reason", None) or ""
    if reason == "KEY_VALUES_MISMATCH":
        return "the private key does not belong to the certificate"
    if reason in ("NO_START_LINE", "PEM_LIB", "") or "PEM" in reason:
        return "not a PEM certificate with its PEM private key"
    return f"not usable: {reason.lower().replace('_', ' ')}"


def _pair(cert_var: str, key_var: str, cert: str | None, key: str | None) -> list[str]:
    if cert is None and key is None:
        return []
    if cert is None or key is None:
        missing, given = (cert_var, key_var) if cert is None else (key_var, cert_var)
        return [f"{missing}: expected a PEM file, since {given} is set (the two go together)"]
    out = [p for p in (_unreadable(cert_var, cert), _unreadable(key_var, key)) if p]
    if out:
        return out
    try:
        server_context(cert, key)
    except ssl.SSLError as exc:
        return [f"{cert_var}={cert!r} with {key_var}: {_ssl_reason(exc)}"]
    return []


def problems(tls_cert: str | None, tls_key: str | None, ipc_tls_cert: str | None, ipc_tls_key: str | None,
             ipc_tls_ca: str | None) -> list[str]:
    """One line per certificate setting (the ``ATOMIC_*`` variables of the same names)
    that cannot be used; empty when all can."""
    out = _pair("ATOMIC_TLS_CERT", "ATOMIC_TLS_KEY", tls_cert, tls_key)
    out += _pair("ATOMIC_IPC_TLS_CERT", "ATOMIC_IPC_TLS_KEY", ipc_tls_cert, ipc_tls_key)
    ca = ipc_tls_ca
    if ca is not None:
        bad = _unreadable("ATOMIC_IPC_TLS_CA", ca)
        if bad is None:
            try:
                client_context(ca)
            except ssl.SSLError:
                bad = f"ATOMIC_IPC_TLS_CA={ca!r}: not a PEM bundle of CA certificates"
        if bad:
            out.append(bad)
    return out


def ca_file_problem(var: str, path: str) -> str | None:
    """For a client's CA file (``--ca``): None when usable, else the one line to print."""
    bad = _unreadable(var, path)
    if bad is None:
        try:
            client_context(path)
        except ssl.SSLError:
            bad = f"{var}={path!r}: not a PEM bundle of CA certificates"
    return bad


def loopback(host: str) -> bool:
    """Whether ``host`` (an address or name from host:port) can only be reached from this
    machine: 127.0.0.0/8, ::1 or ``localhost``. Any other name counts as reachable."""
    import ipaddress

    name = host.strip("[]")
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


__all__ = [
    "ALPN",
    "ca_file_problem",
    "client_context",
    "loopback",
    "problems",
    "server_context",
]
