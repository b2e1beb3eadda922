"""The command-line client: ``atomic generate`` and ``atomic status``.

``generate`` opens ``/ws/stream``, sends the prompt, and shows the job as it happens: each
stage with its timing, the model's tokens as they stream, the program's output, then the
result and the downloaded artifact's path.

Every command that talks to a server takes the same connection options
(:func:`atomic.cli.add_connection_args`): ``--url`` (``ATOMIC_URL``; ``https://`` for a server with
TLS), ``--api-key`` (``ATOMIC_API_KEY``) and ``--ca`` (``ATOMIC_CA_FILE``: a PEM bundle the
server's certificate must chain to; the system's CAs when unset). :func:`connection`
turns them into what httpx and trio-websocket take.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

BOLD = "\033[1m" if sys.stdout.isatty() else ""
DIM = "\033[2m" if sys.stdout.isatty() else ""
RESET = "\033[0m" if sys.stdout.isatty() else ""


@dataclass(frozen=True)
class Connection:
    """How to reach the server: its URL, headers, and the TLS context for https/wss."""

    url: str
    headers: dict[str, str]
    ssl_context: ssl.SSLContext | None

    def http(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers,
                                 verify=self.ssl_context or True, **kw)


class UsageError(Exception):
    """A connection option that cannot be used (printed as one line, exit 2)."""


def connection(args: argparse.Namespace) -> Connection:
    """The parsed connection options; UsageError for a CA file that cannot be used."""
    from .tls import ca_file_problem, client_context

    ca, label = args.ca, "--ca"
    if ca is None and os.environ.get("ATOMIC_CA_FILE"):
        ca, label = os.environ["ATOMIC_CA_FILE"], "ATOMIC_CA_FILE"
    if ca is not None:
        problem = ca_file_problem(label, ca)
        if problem:
            raise UsageError(problem)
    secure = args.url.lower().startswith("https://")
    return Connection(args.url.rstrip("/"), _headers(args.api_key),
                      client_context(ca) if secure or ca is not None else None)


def _ws_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, "/ws/stream", "", ""))


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def generate(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "prompt": args.prompt,
        "language": args.language,
        "priority": args.priority,
        "execute": not args.no_execute,
        "export": [x.strip() for x in args.export.split(",") if x.strip()],
    }
    if args.provider:
        body["provider"] = args.provider
    if args.model:
        body["model"] = args.model
    # Tested generation (read with getattr: a caller's Namespace may predate these flags).
    try:
        if getattr(args, "tests", None):
            with open(args.tests, encoding="utf-8") as fh:
                body["tests"] = json.load(fh)
        if getattr(args, "test_code", None):
            with open(args.test_code, encoding="utf-8") as fh:
                body["test_code"] = fh.read()
    except (OSError, ValueError) as exc:
        print(f"atomic generate: {exc}", file=sys.stderr)
        return 2
    for name in ("samples", "repairs", "temperature", "seed"):
        if getattr(args, name, None) is not None:
            body[name] = getattr(args, name)
    if getattr(args, "judge_all", False):
        body["judge_all"] = True
    return submit(args, body)


def submit(args: argparse.Namespace, body: dict[str, Any]) -> int:
    """Stream the job ``body`` asks for (``generate``, ``replay``): the exit code."""
    try:
        conn = connection(args)
    except UsageError as exc:
        print(f"atomic: configuration: {exc}", file=sys.stderr)
        return 2
    try:
        return trio.run(_generate, args, conn, body)
    except ConnectionRejected as exc:  # the handshake got an error answer (401, 429 ...)
        print(f"atomic: the server refused the stream: {_refusal(exc)}", file=sys.stderr)
        return 1
    except (OSError, httpx.HTTPError) as exc:
        print(f"atomic: cannot reach the server at {args.url}: {_why(exc)}", file=sys.stderr)
        return 1


def _refusal(exc: ConnectionRejected) -> str:
    """``HTTP 429 rate_limited: ... (retry after 1 s)`` from a refused handshake."""
    text = f"HTTP {exc.status_code}"
    try:
        error = json.loads(exc.body or b"{}")["error"]
        text += f" {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        pass
    after = dict(exc.headers).get(b"retry-after")
    if after and b"retry after" not in (exc.body or b""):
        text += f" (retry after {after.decode('latin-1')} s)"
    return text


def _why(exc: BaseException) -> str:
    """A connection failure in one line; a certificate the client does not trust says so."""
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(exc, ssl.SSLCertVerificationError):
        return f"{text} (is its certificate signed by the CA given with --ca or ATOMIC_CA_FILE?)"
    return text


async def _generate(args: argparse.Namespace, conn: Connection, body: dict[str, Any]) -> int:
    out = sys.stdout
    headers = [(k.encode(), v.encode()) for k, v in conn.headers.items()]
    t0 = time.monotonic()
    job: dict[str, Any] | None = None
    last_stage: str | None = None
    stage_t0 = t0
    streaming = False
    ws_url = _ws_url(conn.url)
    tls = conn.ssl_context if ws_url.startswith("wss://") else None
    async with open_websocket_url(ws_url, extra_headers=headers, ssl_context=tls) as ws:
        await ws.send_message(json.dumps(body))
        while True:
            try:
                msg = json.loads(await ws.get_message())
            except ConnectionClosed:
                break
            kind = msg.get("type")
            if kind == "accepted":
                print(f"{BOLD}job {msg['job']['id']}{RESET} accepted "
                      f"(queue position {msg['job'].get('queue_position')})", file=out)
            elif kind == "state" and "candidate" in msg:  # one candidate's own stage
                if streaming:
                    print(file=out)
                    streaming = False
                print(f"{DIM}  candidate {msg['candidate']}: {msg['state']}{RESET}", file=out)
            elif kind == "state":
                if streaming:
                    print(file=out)
                    streaming = False
                now = time.monotonic()
                if last_stage is not None:
                    print(f"{DIM}  {last_stage.lower()} took {now - stage_t0:.2f} s{RESET}", file=out)
                last_stage, stage_t0 = msg["state"], now
                print(f"{BOLD}[{msg['progress'] * 100:5.1f}%] {msg['state']}{RESET}", file=out, flush=True)
            elif kind == "token":
                if not args.quiet and msg.get("candidate", 0) == 0:  # several samples: the first one's
                    out.write(msg["text"])
                    out.flush()
                    streaming = True
            elif kind == "file":
                if streaming:
                    print(file=out)
                    streaming = False
                print(f"  file {msg['path']} ({msg['size']} bytes){_source(msg)}", file=out)
            elif kind == "output":
                if not args.quiet:
                    label = _source(msg).strip()
                    prefix = ("  | " if msg["stream"] == "stdout" else "  ! ") + (label + " " if label else "")
                    for line in msg["data"].splitlines():
                        print(prefix + line, file=out)
            elif kind == "done":
                job = msg["job"]
            elif kind == "error":
                print(f"atomic: {msg['error']['code']}: {msg['error']['message']}", file=sys.stderr)
                return 2
    if job is None:
        print("atomic: the connection closed before the job ended", file=sys.stderr)
        return 1
    return await _report(args, conn, job, time.monotonic() - t0)


def _source(msg: dict[str, Any]) -> str:
    """`` [candidate 1, case abc]`` for an event that names them, else ""."""
    parts = []
    if "candidate" in msg:
        parts.append(f"candidate {msg['candidate']}")
    if "case" in msg:
        parts.append(f"case {msg['case']}")
    return f" [{', '.join(parts)}]" if parts else ""


async def _report(args: argparse.Namespace, conn: Connection, job: dict[str, Any], elapsed: float) -> int:
    out = sys.stdout
    print(f"\n{BOLD}{job['state']}{RESET} in {elapsed:.2f} s", file=out)
    if job.get("total") is not None:
        print(f"  {job.get('verdict')}: {job.get('passed')}/{job['total']} tests passed", file=out)
        for t in job.get("tests") or []:
            print(f"    {t['verdict']:13} {t.get('name') or ''}", file=out)
    cands = job.get("candidates") or []
    if len(cands) > 1:
        for c in cands:
            kept = "  (kept)" if c["index"] == job.get("chosen") else ""
            print(f"  candidate {c['index']}: {c['verdict']} {c['passed']}/{c['total']} in {c['attempts']} "
                  f"attempt(s), seed {c.get('seed')}{kept}", file=out)
    for f in job.get("files") or []:
        print(f"  {f['path']}  {f['size']} bytes  sha256 {f['sha256'][:16]}…", file=out)
    ex = job.get("execution")
    if ex:
        print(f"  ran: termination={ex['termination']} exit_code={ex['exit_code']} "
              f"duration={ex['duration_ms']:.0f} ms truncated={ex['truncated']}", file=out)
        if ex.get("stdout"):
            print("  stdout:", file=out)
            for line in ex["stdout"].splitlines()[:40]:
                print("    " + line, file=out)
        if ex.get("stderr"):
            print("  stderr:", file=out)
            for line in ex["stderr"].splitlines()[-20:]:
                print("    " + line, file=out)
    usage = job.get("usage") or {}
    if usage.get("provider"):
        print(f"  model: {usage['provider']}/{usage['model']}  tokens: {usage['prompt_tokens']} in, "
              f"{usage['completion_tokens']} out", file=out)
    if job.get("error"):
        err = job["error"]
        print(f"  error: {err['code']} in {err.get('stage')}: {err['message']}", file=out)
    async with conn.http(timeout=30) as client:
        for art in job.get("artifacts") or []:
            resp = await client.get(art["url"])
            if resp.status_code != 200:
                print(f"  artifact {art['format']}: HTTP {resp.status_code}", file=out)
                continue
            name = art.get("filename") or f"atomic-{job['id']}.{art['format']}"
            path = os.path.abspath(os.path.join(args.out, os.path.basename(name)))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            await trio.Path(path).write_bytes(resp.content)
            print(f"  artifact {art['format']}: {path} ({len(resp.content)} bytes)", file=out)
    return 0 if job["state"] == "COMPLETE" else 3


def status(args: argparse.Namespace) -> int:
    try:
        conn = connection(args)
    except UsageError as exc:
        print(f"atomic: configuration: {exc}", file=sys.stderr)
        return 2
    try:
        resp = httpx.get(conn.url + "/api/status", headers=conn.headers, timeout=10,
                         verify=conn.ssl_context or True)
    except httpx.HTTPError as exc:
        print(f"atomic: cannot reach the server at {args.url}: {_why(exc)}", file=sys.stderr)
        return 1
    doc = resp.json()
    if args.json or resp.status_code != 200:
        print(json.dumps(doc, indent=2))
        return 0 if resp.status_code == 200 and doc.get("status") == "ok" else 1
    print(f"status    {doc['status']}  (version {doc['version']}, up {doc['uptime_s']:.0f} s)")
    for reason in doc.get("reasons", []):
        print(f"  reason  {reason}")
    q = doc["queue"]
    print(f"queue     {q['depth']}/{q['capacity']}  {q['by_priority']}")
    print(f"workers   {doc['workers']['busy']}/{doc['workers']['total']} busy")
    a = doc["agent"]
    print(f"agent     healthy={a.get('healthy')} connected={a.get('connected')}/{a.get('pool_size')}")
    s = doc["sandbox"]
    print(f"sandbox   available={s.get('available')} image={s.get('image')} warm={s.get('warm')}")
    print(f"languages {', '.join(doc['languages'])}")
    return 0 if doc["status"] == "ok" else 1


# --- atomic replay -----------------------------------------------------------------------

# The generate fields an atomic.json may carry back into a new job.
REPLAY_FIELDS = ("prompt", "language", "priority", "provider", "model", "execute", "limits", "export",
                 "tests", "test_code", "samples", "repairs", "temperature", "seed", "judge_all")


def read_provenance(path: str) -> dict[str, Any]:
    """``atomic.json``: the file itself, or the one inside a zip or tar artifact."""
    import tarfile
    import zipfile

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == "atomic.json"]
            if not names:
                raise ValueError(f"{path}: the archive holds no atomic.json")
            return dict(json.loads(zf.read(min(names, key=len))))
    if tarfile.is_tarfile(path):
        with tarfile.open(path) as tf:
            members = [m for m in tf.getmembers() if m.isfile() and m.name.rsplit("/", 1)[-1] == "atomic.json"]
            if not members:
                raise ValueError(f"{path}: the archive holds no atomic.json")
            member = tf.extractfile(min(members, key=lambda m: len(m.name)))
            assert member is not None
            return dict(json.loads(member.read()))
    with open(path, encoding="utf-8") as text:
        return dict(json.load(text))


def replay_body(doc: dict[str, Any]) -> dict[str, Any]:
    """The generate body that runs the recorded job again.

    The job's own request (``request``) comes first; the recorded facts (provider, model,
    sampling parameters and seeds, limits, tests) override it, so the new job asks for what
    the old one actually used, not what it left to defaults.
    """
    body: dict[str, Any] = {}
    request = doc.get("request")
    if isinstance(request, dict):
        body.update({k: v for k, v in request.items() if k in REPLAY_FIELDS})
    body.update({k: v for k, v in doc.items() if k in REPLAY_FIELDS and v is not None})
    sampling = doc.get("sampling")
    if isinstance(sampling, dict):
        for key in ("temperature", "seed", "samples", "repairs"):
            if sampling.get(key) is not None:
                body[key] = sampling[key]
        seeds = sampling.get("seeds")
        if body.get("seed") is None and isinstance(seeds, list) and seeds:
            body["seed"] = seeds[0]  # sample i used seed + i
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        raise ValueError("atomic.json has no prompt")
    body.pop("wait", None)
    return body


def replay(args: argparse.Namespace) -> int:
    try:
        body = replay_body(read_provenance(args.file))
    except (OSError, ValueError) as exc:
        print(f"atomic replay: {exc}", file=sys.stderr)
        return 2
    if args.print:
        print(json.dumps(body, indent=2))
        return 0
    return submit(args, body)
