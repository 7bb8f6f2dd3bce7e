"""The permission check (docs/security.md, "Permissions (Attica)"), as the C SDK makes it.

check() is fb_task_require: after the wait for inputs and before acting, it
reads AUTH_TOKEN, FLOWBUS_REQUIRES_AUTH and FLOWBUS_PERMISSIONS_REQUIRED and
raises Denied with the one-line reason, or returns when the task may act.
The fetch uses urllib (TLS always verified, no redirects, no proxy for the
loopback, 1 MiB bound, timeout for the whole request) and the run-wide cache
of the C SDK (sdk/src/auth/auth_cache.c): the same <sha256(salt NUL url NUL token)>.json
entries and .lock files under FLOWBUS_RUN_DIR, the same flock() and rename,
so a C task and a Python task of one run share one request.

Lifted from tasks/examples/flowbus-upper, which had it before the SDK.
"""

import fcntl
import hashlib
import http.client
import json
import os
import socket
import ssl
import stat
import time
import urllib.error
import urllib.parse
import urllib.request

from ._errors import Denied

ATTICA_DEFAULT_URL = "https://attica.tech/permissions"
MAX_BODY = 1024 * 1024
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: a 3xx is just a non-2xx answer."""

    def redirect_request(self, *args, **kwargs):
        return None


def _seconds(name, default, allow_zero):
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1
    if value < 0 or (value == 0 and not allow_zero) or value != value:
        raise Denied("%s is '%s'; expected a number of seconds" % (name, text))
    return value


def _parse_permissions(value, host):
    """The granted names of an answer's "permissions": an object of booleans or an array of names."""
    bad = "malformed response from the permission service at %s: " % host
    if isinstance(value, dict):
        if not all(isinstance(v, bool) for v in value.values()):
            raise Denied(bad + "a value in the \"permissions\" object is not true or false")
        names = [k for k, v in value.items() if v]
    elif isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise Denied(bad + "an item of the \"permissions\" array is not a string")
        names = list(value)
    else:
        raise Denied(bad + "\"permissions\" is neither an object nor an array")
    for n in names:
        if not n or len(n) > 128 or any(c <= " " or c > "~" or c == "," for c in n):
            raise Denied(bad + "a permission name is empty, too long or has blanks or control characters")
    return sorted(set(names))


def _request(url, token, timeout, ca_file):
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    where = "%s:%d" % (host, parts.port) if parts.port else host
    if parts.scheme not in ("http", "https") or not host:
        raise Denied("the permission service URL is malformed (expected https://host/path)")
    if parts.scheme == "http" and host not in LOOPBACK:
        raise Denied("refusing plain http:// to %s: the token would travel unencrypted (use https://; "
                     "http:// is only for 127.0.0.1, localhost or ::1)" % where)
    handlers = [_NoRedirect()]
    if host in LOOPBACK:
        handlers.append(urllib.request.ProxyHandler({}))  # a proxy would see the token
    if parts.scheme == "https":
        # Verification always on (the default context checks the chain and the host name).
        handlers.append(urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file)))
    opener = urllib.request.build_opener(*handlers)
    body = json.dumps({"auth_token": token}).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "Accept": "application/json"})
    deadline = time.monotonic() + timeout
    try:
        with opener.open(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_BODY:
                raise Denied("response too large from the permission service at %s (over %d bytes)"
                             % (where, MAX_BODY))
            data = b""
            while True:
                if time.monotonic() > deadline:
                    raise socket.timeout()
                chunk = resp.read(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > MAX_BODY:  # cut off early, like the C SDK
                    raise Denied("response too large from the permission service at %s (over %d bytes)"
                                 % (where, MAX_BODY))
    except urllib.error.HTTPError as e:
        raise Denied("permission service at %s answered HTTP status %d" % (where, e.code))
    except (socket.timeout, TimeoutError):
        raise Denied("permission service at %s timed out after %g s" % (where, timeout))
    except urllib.error.URLError as e:
        reason = e.reason
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise Denied("permission service at %s timed out after %g s" % (where, timeout))
        if isinstance(reason, ssl.SSLError):
            raise Denied("TLS with the permission service at %s failed: %s" % (where, reason))
        raise Denied("permission service unreachable at %s: %s" % (where, reason))
    except ssl.SSLError as e:
        raise Denied("TLS with the permission service at %s failed: %s" % (where, e))
    except (http.client.HTTPException, ConnectionError) as e:
        raise Denied("permission service at %s closed the connection without a complete answer: %s"
                     % (where, type(e).__name__))
    try:
        answer = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except _DuplicateKey:
        raise Denied("malformed response from the permission service at %s: a key appears twice "
                     "in one object, so its meaning is ambiguous" % where)
    except (UnicodeDecodeError, ValueError):
        # The decoder's message quotes the body, which might echo the token: say only what it is.
        raise Denied("malformed response from the permission service at %s: not JSON" % where)
    if not isinstance(answer, dict) or "permissions" not in answer:
        raise Denied("malformed response from the permission service at %s: no \"permissions\" key "
                     "in a JSON object" % where)
    return _parse_permissions(answer["permissions"], where)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs):
    """A JSON object whose keys are all different (as the C SDK's JSON_REJECT_DUPLICATES).

    json.loads would keep the last of two equal keys, so {"can_x": false, "can_x": true}
    would grant what another reader denies: such an answer is refused instead.
    """
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _cache_dir(run_dir, log):
    """The run directory if it is safe to use (ours, mode 0700), else None."""
    try:
        st = os.stat(run_dir)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        log("warning: permission cache not used: %s must be a directory of this user with mode 0700" % run_dir)
        return None
    return run_dir


def fetch_permissions(token, log):
    """The granted names for token, through the run's cache (shared with the C SDK)."""
    url = os.environ.get("FLOWBUS_ATTICA_URL") or ATTICA_DEFAULT_URL
    timeout = _seconds("FLOWBUS_ATTICA_TIMEOUT", 3.0, False)
    ttl = _seconds("FLOWBUS_ATTICA_CACHE_TTL", 60.0, True)
    ca_file = os.environ.get("FLOWBUS_ATTICA_CA_FILE") or None
    run_dir = os.environ.get("FLOWBUS_RUN_DIR") or None
    cache = _cache_dir(run_dir, log) if run_dir and ttl > 0 else None
    if cache is None:
        return _request(url, token, timeout, ca_file)
    salt = os.environ.get("FLOWBUS_CACHE_SALT") or run_dir
    # The same entry name as auth_cache__key in sdk/src/auth/auth_cache.c: SHA-256 of salt NUL url NUL token.
    key = hashlib.sha256(salt.encode() + b"\0" + url.encode() + b"\0" + token.encode()).hexdigest()
    entry = os.path.join(cache, key + ".json")
    lock = os.open(os.path.join(cache, key + ".lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        deadline = time.monotonic() + timeout
        locked = False
        while not locked:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break  # the holder is slow: ask on our own, without the cache
                time.sleep(0.005)  # flock has no timed wait
        if locked:
            try:
                with open(entry, "rb") as f:
                    cached = json.loads(f.read(2 * MAX_BODY).decode("utf-8"),
                                        object_pairs_hook=_no_duplicates)
                left = float(cached["expires"]) - time.time()
                if 0 < left <= ttl + 1:
                    return _parse_permissions(cached["permissions"], "cache")
            except (OSError, ValueError, KeyError, TypeError, Denied):
                pass  # no valid entry
        names = _request(url, token, timeout, ca_file)
        if locked:
            tmp = "%s.tmp%d" % (entry[:-len(".json")], os.getpid())
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "w") as f:
                    json.dump({"expires": time.time() + ttl, "permissions": names}, f)
                os.replace(tmp, entry)
            except OSError:
                log("warning: permission cache: cannot write an entry in %s" % cache)
        return names
    finally:
        os.close(lock)  # releases the lock


def check(names, log, environ=None):
    """Raises Denied unless the task may act; names are the plugin's own required permissions.

    log(line) receives the warnings (an unusable cache directory); the token
    is never in them.
    """
    env = os.environ if environ is None else environ
    token = env.get("AUTH_TOKEN") or None
    required = [n.strip() for n in env.get("FLOWBUS_PERMISSIONS_REQUIRED", "").split(",") if n.strip()]
    requires_auth = env.get("FLOWBUS_REQUIRES_AUTH", "") in ("1", "true", "yes")
    if token is None:
        if requires_auth:
            raise Denied("no AUTH_TOKEN: this task requires authentication (requires_auth) and has no token")
        if required:
            raise Denied("no AUTH_TOKEN: the workflow requires permissions of this task (%s) and it has "
                         "no token" % ",".join(required)[:200])
        return  # auth is not in use: the plugin's own names apply once a token is given
    try:
        granted = set(fetch_permissions(token, log))
    except Denied:
        raise
    except Exception as e:  # fail closed on anything unexpected, without echoing details
        raise Denied("the permission check failed: %s" % type(e).__name__)
    missing = [n for n in dict.fromkeys(list(names) + required) if n not in granted]
    if missing:
        raise Denied("missing permission%s %s" % ("s" if len(missing) > 1 else "", ", ".join(missing)))
