#!/usr/bin/python3
"""attica_server - a local stand-in for the Attica permission service.

The real service is out of reach from our machines; this one speaks the same
contract (docs/security.md):

    POST /permissions  {"auth_token": "<token>"}
      -> 200 {"permissions": {"can_x": true, ...}}   (object form)
      -> 200 {"permissions": ["can_x", ...]}         (array form)
      -> 401 {"error": "unknown token"}              (a token it does not know)
    GET /stats -> {"total": N, "requests": {"<token>": n, ...}}

It listens on 127.0.0.1 (a free port unless --port is given) and, when it is
ready, prints "PORT n" on stdout and writes n to --port-file if given. Tests
start it as a subprocess, read the port, and stop it by PID.

Configuration: a JSON file (--config) and/or the command line.

    {
      "tokens": {
        "tok-a": {"permissions": {"can_view_system": true, "can_execute_commands": false}},
        "tok-b": {"permissions": ["can_read", "can_view"], "delay": 0.5},
        "tok-c": {"fail": "status", "status": 500}
      },
      "delay": 0,          # seconds before every answer (a token's own delay wins)
      "fail": null,        # a failure for every token (a token's own fail wins)
      "status": 500,       # the status code of fail "status"
      "fail_first": 1      # optional: only the first N requests of a token fail
    }

Failure modes ("fail"):
    status      answer with "status" (default 500) and a JSON error body
    malformed   200 with a body that is not JSON (it contains the token, to
                prove that clients do not echo response text)
    wrongtype   200 with {"permissions": "everything"}
    huge        200 with a 10 MB body streamed without Content-Length
    huge_length 200 with a 10 MB body announced by Content-Length
    close       close the connection without answering

Command line (adds to the file):
    --token TOKEN=can_a,can_b      array form
    --token-object TOKEN=can_a,!can_b   object form (! marks false)
    --delay S  --fail MODE  --status N
    --tls-cert PEM --tls-key PEM   serve https instead of http
    --demo     the tokens of workflows/secured.yaml on port 8765:
               "demo-token" may view the system but not execute commands,
               "admin-token" may do both

The server never logs request bodies or tokens. Use /usr/bin/python3 or any
Python 3.7+ (stdlib only).
"""

import argparse
import http.server
import json
import socket
import ssl
import sys
import threading
import time

HUGE_BYTES = 10 * 1024 * 1024
MAX_REQUEST = 64 * 1024

DEMO = {
    "tokens": {
        "demo-token": {"permissions": {"can_view_system": True, "can_execute_commands": False}},
        "admin-token": {"permissions": ["can_view_system", "can_execute_commands"]},
    }
}


class State:
    """The configuration and the request counters, shared by the handler threads."""

    def __init__(self, config):
        self.config = config
        self.lock = threading.Lock()
        self.requests = {}
        self.total = 0

    def count(self, token):
        """Counts a request; returns how many this token has made, this one included."""
        with self.lock:
            self.total += 1
            self.requests[token] = self.requests.get(token, 0) + 1
            return self.requests[token]

    def stats(self):
        with self.lock:
            return {"total": self.total, "requests": dict(self.requests)}


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "attica-standin/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        """Quiet: the access log is not needed, and bodies are never logged."""

    def _send_json(self, status, obj, close=False):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/stats":
            self._send_json(200, self.server.state.stats())
        elif self.path in ("/", "/health"):
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": "not found"})

    def do_POST(self):
        state = self.server.state
        try:
            length = int(self.headers.get("Content-Length") or "0")
        except ValueError:
            length = -1
        if length < 0 or length > MAX_REQUEST:
            self._send_json(400, {"error": "missing or too large Content-Length"}, close=True)
            return
        raw = self.rfile.read(length)
        try:
            token = json.loads(raw.decode("utf-8"))["auth_token"]
            if not isinstance(token, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            self._send_json(400, {"error": "expected a JSON body {\"auth_token\": \"...\"}"})
            return
        nth = state.count(token)
        config = state.config
        entry = config.get("tokens", {}).get(token)
        spec = entry or {}
        delay = spec.get("delay", config.get("delay", 0)) or 0
        fail = spec.get("fail", config.get("fail"))
        if fail is not None and nth > spec.get("fail_first", config.get("fail_first", nth)):
            fail = None  # only the first fail_first requests fail
        status = spec.get("status", config.get("status", 500))
        if delay:
            time.sleep(delay)
        if fail is None and entry is None:
            self._send_json(401, {"error": "unknown token"})
        elif fail is None:
            self._send_json(200, {"permissions": spec.get("permissions", {})})
        elif fail == "status":
            self._send_json(int(status), {"error": "stand-in failure %s" % status})
        elif fail == "malformed":
            body = ("{\"permissions\": [\"can_view_system\" <- not JSON, token %s" % token).encode()
            self._raw(200, body)
        elif fail == "wrongtype":
            self._send_json(200, {"permissions": "everything"})
        elif fail in ("huge", "huge_length"):
            self._huge(announce=fail == "huge_length")
        elif fail == "close":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        else:
            self._send_json(500, {"error": "unknown failure mode %r" % fail})

    def _raw(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _huge(self, announce):
        """10 MB of a JSON array; the client is expected to hang up early."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if announce:
            self.send_header("Content-Length", str(HUGE_BYTES))
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        chunk = b'"can_view_system",' * 4096
        sent = 0
        try:
            self.wfile.write(b'{"permissions": [')
            while sent < HUGE_BYTES:
                self.wfile.write(chunk)
                sent += len(chunk)
            self.wfile.write(b'"x"]}')
        except OSError:
            pass  # the client hung up, as it should


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        """Broken pipes from clients that hang up are expected; stay quiet."""


def parse_token_arg(text, object_form):
    token, sep, names = text.partition("=")
    if not sep or not token:
        raise argparse.ArgumentTypeError("expected TOKEN=name,name")
    items = [n for n in names.split(",") if n]
    if object_form:
        return token, {"permissions": {n.lstrip("!"): not n.startswith("!") for n in items}}
    return token, {"permissions": items}


def main(argv=None):
    ap = argparse.ArgumentParser(description="A local stand-in for the Attica permission service.")
    ap.add_argument("--config", help="JSON configuration file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=None, help="default: a free port (8765 with --demo)")
    ap.add_argument("--port-file", help="write the port number here once listening")
    ap.add_argument("--token", action="append", default=[], help="TOKEN=can_a,can_b (array form)")
    ap.add_argument("--token-object", action="append", default=[],
                    help="TOKEN=can_a,!can_b (object form; ! marks false)")
    ap.add_argument("--delay", type=float, help="seconds before every answer")
    ap.add_argument("--fail", help="failure mode for every token")
    ap.add_argument("--status", type=int, help="status code of --fail status")
    ap.add_argument("--tls-cert", help="serve https with this certificate (PEM)")
    ap.add_argument("--tls-key", help="the certificate's key (PEM)")
    ap.add_argument("--demo", action="store_true", help="the tokens of workflows/secured.yaml")
    args = ap.parse_args(argv)

    config = {"tokens": {}}
    if args.demo:
        config = json.loads(json.dumps(DEMO))
    if args.config:
        with open(args.config) as f:
            loaded = json.load(f)
        config["tokens"].update(loaded.get("tokens", {}))
        config.update({k: v for k, v in loaded.items() if k != "tokens"})
    for text in args.token:
        token, spec = parse_token_arg(text, False)
        config["tokens"][token] = spec
    for text in args.token_object:
        token, spec = parse_token_arg(text, True)
        config["tokens"][token] = spec
    for key in ("delay", "fail", "status"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)

    port = args.port if args.port is not None else (8765 if args.demo else 0)
    server = Server((args.host, port), Handler)
    server.state = State(config)
    scheme = "http"
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        import os
        os.replace(args.port_file + ".tmp", args.port_file)
    print("PORT %d" % port, flush=True)
    if args.demo:
        sys.stderr.write("attica stand-in: %s://%s:%d/permissions; tokens: %s\n"
                         % (scheme, args.host, port, ", ".join(sorted(config["tokens"]))))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
