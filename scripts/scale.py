#!/usr/bin/env python3
"""`make scale`: the deployed shape under load, on one machine.

Runs under `bookshelf-dev with-postgres --max-connections 50` (a small instance's limit).
Every function is its release binary in execution environments of its own: one process of
AWS's Runtime Interface Emulator per environment (from the SAM CLI package), each serving
one invocation at a time with its own connection pool, as Lambda runs them. The gateway
(`bookshelf-dev gateway`) stands in for API Gateway: it routes template.yaml's routes to
idle environments and caches the authorizer's answers for the template's TTL. The
environments reach PostgreSQL through PgBouncer in transaction mode with 20 server
connections and a 2 s wait limit (`query_wait_timeout`, RDS Proxy's ConnectionBorrowTimeout),
with DB_POOLING=transaction and the function timeout as the template sets them.

For each N (environments in all, SCALE_N, default "50 200 500") it reports, per route,
requests/s and p50/p99 under wrk with one connection per environment, the non-2xx answers,
the most server connections in use, and the environments' memory. Then overload: every
server connection held by something slower than the wait limit, and the API must answer
503 problem+json with Retry-After within 3 s, never a function timeout.
Writes the table into BENCHMARKS.md (section "Scale"); the raw figures stay in its work directory.
"""
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench as b  # noqa: E402  (the release binaries, wrk's parsing, HTTP helpers)

ROOT = b.ROOT
NS = [int(n) for n in os.environ.get("SCALE_N", "50 200 500").split()]
SECONDS = int(os.environ.get("SCALE_SECONDS", "10"))
SERVER_CONNECTIONS = 20
BORROW_TIMEOUT_S = 2  # template.yaml: ConnectionBorrowTimeout
FUNCTION_TIMEOUT_S = 4  # template.yaml: Globals.Function.Timeout
ROUTES = ["books-get", "library-put", "orders-create"]


def log(*args):
    print("[scale]", *args, flush=True)


def rie():
    arch = {"x86_64": "x86_64", "aarch64": "arm64"}[os.uname().machine]
    found = glob.glob(os.path.join(b.VENV, "lib", "python3*", "site-packages", "samcli", "local", "rapid",
                                   f"aws-lambda-rie-{arch}"))
    if not found:
        raise SystemExit("aws-lambda-rie not found in the tools venv: run scripts/ensure-tools.sh")
    return found[0]


def psql(url, sql):
    return subprocess.run(["psql", "-X", "-A", "-t", "-F", "|", url, "-c", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


class PgBouncer:
    """scripts/lib/pgbouncer.sh's PgBouncer, left running until `stop`."""

    def __init__(self, mode, size, wait):
        out = subprocess.run(
            ["bash", "-c", f". scripts/lib/pgbouncer.sh; start_pgbouncer {mode} {size} {wait}; trap - EXIT;"
                           ' echo "$pgbouncer_port $pgbouncer_dir"'],
            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
        self.port, self.dir = int(out[-2]), out[-1]

    def url(self, user, db="bookshelf"):
        return f"postgres://{user}@127.0.0.1:{self.port}/{db}?sslmode=disable"

    def server_connections(self):
        """Server connections of the application pool: active, idle, used, tested, login."""
        rows = psql(self.url("postgres", "pgbouncer"), "SHOW POOLS").splitlines()
        total = 0
        for row in rows:
            f = row.split("|")
            if f[0] == "bookshelf":
                total += sum(int(x) for x in f[6:11])
        return total

    def stop(self):
        try:
            with open(os.path.join(self.dir, "pgbouncer.pid")) as f:
                os.kill(int(f.read()), 15)
        except (OSError, ValueError):
            pass


class Ports:
    """Distinct free ports below the kernel's ephemeral range (32768 and up), so that none
    is handed out twice and no outgoing connection takes one before its server binds it."""

    def __init__(self, start=12000, end=32000):
        self.next, self.end = start, end

    def take(self):
        import socket
        while self.next < self.end:
            port, self.next = self.next, self.next + 1
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue
        raise SystemExit("no free port left below 32000")


PORTS = Ports()


class Environments:
    """N processes of the Runtime Interface Emulator, each one environment of a function."""

    def __init__(self, counts, env, log):
        self.log = log
        self.procs, self.started = [], []
        self.urls = {}
        self.binary, self.env = rie(), env
        for function, count in counts.items():
            for _ in range(count):
                self.start(function)
        # One that could not start (a port taken after all) is replaced, as Lambda would.
        time.sleep(1)
        for i, (proc, function, url) in enumerate(list(self.started)):
            if proc.poll() is not None:
                self.urls[function].remove(url)
                self.start(function)
        dead = [f for p, f, _ in self.started if p.poll() is not None]
        if dead:
            raise SystemExit(f"environments would not start: {dead}")

    def start(self, function):
        port, api = PORTS.take(), PORTS.take()
        proc = subprocess.Popen(
            [self.binary, "--runtime-interface-emulator-address", f"127.0.0.1:{port}",
             "--runtime-api-address", f"127.0.0.1:{api}", os.path.join(b.RELEASE, function)],
            env=dict(self.env, AWS_LAMBDA_FUNCTION_NAME=function), stdout=subprocess.DEVNULL, stderr=self.log)
        self.procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        self.started.append((proc, function, url))
        self.urls.setdefault(function, []).append(url)

    def rss_mib(self):
        """Resident memory of every environment: the emulator and the function's process."""
        total = 0
        for p in self.procs:
            pids = [p.pid]
            try:
                with open(f"/proc/{p.pid}/task/{p.pid}/children") as f:
                    pids += [int(c) for c in f.read().split()]
            except OSError:
                pass
            for pid in pids:
                total += current_rss_kb(pid)
        return total / 1024

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def current_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else 0
    except OSError:
        return 0


def lua(path, route, tokens, books):
    """A wrk script that spreads requests over the readers and books."""
    arrays = f"local tokens = {{{','.join(json.dumps(t) for t in tokens)}}}\n" \
             f"local books = {{{','.join(json.dumps(x) for x in books)}}}\n"
    method, target, body = {
        "books-get": ('"GET"', '"/books/" .. book', "nil"),
        "library-put": ('"PUT"', '"/library/" .. book', '\'{"status":"reading","favorite":true}\''),
        "orders-create": ('"POST"', '"/orders"', '\'{"items":[{"bookId":"\' .. book .. \'","quantity":1}]}\''),
    }[route]
    with open(path, "w") as f:
        f.write(arrays + f"""
local i = 0
request = function()
  i = i + 1
  local token = tokens[(i % #tokens) + 1]
  local book = books[(i * 7 % #books) + 1]
  return wrk.format({method}, {target},
    {{["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}}, {body})
end

-- Every answer's status, summed over wrk's threads and printed at the end.
local threads = {{}}
setup = function(thread) table.insert(threads, thread) end
init = function() statuses = {{}} end
response = function(status) statuses[status] = (statuses[status] or 0) + 1 end
done = function()
  local total = {{}}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d %d\\n", k, v)) end
end
""")


def run_wrk(url, script, connections, seconds):
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency", "-s", script, url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    max_ms = re.search(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", out)
    top = float(max_ms.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[max_ms.group(2)] if max_ms else None
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": b.percentile_ms(out, "50"), "p99": b.percentile_ms(out, "99"), "max": top,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": sum(int(x) for x in errors.groups()) if errors else 0,
        "statuses": {m.group(1): int(m.group(2)) for m in re.finditer(r"^status (\d+) (\d+)$", out, re.M)},
    }


class Sampler(threading.Thread):
    """The most server connections PgBouncer holds while a run lasts."""

    def __init__(self, bouncer):
        super().__init__(daemon=True)
        self.bouncer, self.most, self.done = bouncer, 0, threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.most = max(self.most, self.bouncer.server_connections())
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.25)

    def stop(self):
        self.done.set()
        self.join()
        return self.most


def gateway(environments, workdir):
    path = os.path.join(workdir, "environments.json")
    with open(path, "w") as f:
        json.dump(environments.urls, f)
    port = b.free_port()
    log_file = open(os.path.join(workdir, f"gateway-{port}.log"), "w")
    proc = subprocess.Popen([b.DEV, "gateway", path], cwd=ROOT, stdout=log_file, stderr=log_file,
                            env=dict(os.environ, PORT=str(port), RUST_LOG="warn"))
    url = f"http://127.0.0.1:{port}"
    wait_port(port, proc)
    return proc, url


def wait_port(port, proc, timeout=30):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the gateway exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("the gateway did not start")


def setup(workdir):
    """Schema, application role, admin, keys, books and readers, through the dev server."""
    keys = os.path.join(workdir, "keys.json")
    server = b.Server(keys)
    try:
        subprocess.run([b.DEV, "seed", "200"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, RUST_LOG="warn"))
        status, page = b.call("GET", server.url + "/books?limit=100", token=b.login(
            server.url, "admin@bookshelf.local", "bookshelf-admin"))
        assert status == 200, page
        books = [x["id"] for x in page["items"]]
        tokens = [b.register(server.url, f"scale-{i}-{os.getpid()}@example.org") for i in range(64)]
    finally:
        server.stop()
    return keys, books, tokens


def measure(n, bouncer, env, workdir, books, tokens):
    auth = max(2, n // 10)
    each = (n - auth) // len(ROUTES)
    counts = {"authorizer": auth, **{r: each for r in ROUTES}}
    log(f"N={n}: {counts}")
    envs = Environments(counts, env, open(os.path.join(workdir, f"environments-{n}.log"), "w"))
    proc, url = gateway(envs, workdir)
    try:
        # Warm every environment once (its init and first connection), as a steady state has.
        for route in ROUTES:
            script = os.path.join(workdir, f"{route}.lua")
            lua(script, route, tokens, books)
            run_wrk(url, script, counts[route], 2)
        for route in ROUTES:
            method, path, body = {"books-get": ("GET", f"/books/{books[0]}", None),
                                  "library-put": ("PUT", f"/library/{books[1]}", {"status": "reading"}),
                                  "orders-create": ("POST", "/orders", {"items": [{"bookId": books[2], "quantity": 1}]})}[route]
            status, answer = b.call(method, url + path, body, token=tokens[0])
            log(f"N={n} {route}: one request answers {status}")
            if status >= 300:
                raise SystemExit(f"{route} answered {status}: {answer}")
        row = {"n": n, "environments": counts, "routes": {}}
        most = 0
        for route in ROUTES:
            script = os.path.join(workdir, f"{route}.lua")
            sampler = Sampler(bouncer)
            sampler.start()
            row["routes"][route] = run_wrk(url, script, counts[route], SECONDS)
            most = max(most, sampler.stop())
            log(f"N={n} {route}: {row['routes'][route]}")
        row["server_connections"] = most
        row["rss_mib"] = round(envs.rss_mib())
        log(f"N={n}: most server connections {most}, environments' RSS {row['rss_mib']} MiB")
        return row
    finally:
        proc.terminate()
        proc.wait()
        envs.stop()


def overload(bouncer, env, workdir, books, tokens):
    """Every server connection held longer than the wait limit: demand the proxy cannot
    serve within its borrow timeout. Answers must be fast 503s, not function timeouts."""
    counts = {"authorizer": 4, "books-get": 40}
    envs = Environments(counts, env, open(os.path.join(workdir, "environments-overload.log"), "w"))
    proc, url = gateway(envs, workdir)
    holders = []
    try:
        script = os.path.join(workdir, "books-get.lua")
        lua(script, "books-get", tokens, books)
        run_wrk(url, script, 40, 2)  # warm, and the authorizer's answers cached
        sql = f"SELECT pg_sleep({SECONDS + 6})"
        holders = [subprocess.Popen(["psql", "-X", "-q", bouncer.url("bookshelf_app"), "-c", sql],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                   for _ in range(SERVER_CONNECTIONS)]
        time.sleep(1)
        held = bouncer.server_connections()
        # One request by hand, to see the answer's shape.
        start = time.time()
        status, body, headers = call_with_headers(url + f"/books/{books[0]}", tokens[0])
        one = {"status": status, "seconds": round(time.time() - start, 2),
               "content_type": headers.get("content-type"), "retry_after": headers.get("retry-after"),
               "body": body}
        result = run_wrk(url, script, 40, SECONDS - 2)
        result.update({"held_server_connections": held, "sample": one})
        log(f"overload: {result}")
        return result
    finally:
        for h in holders:
            h.terminate()
            h.wait()
        proc.terminate()
        proc.wait()
        envs.stop()


def call_with_headers(url, token):
    import urllib.error
    import urllib.request
    req = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), dict((k.lower(), v) for k, v in r.headers.items())
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict((k.lower(), v) for k, v in e.headers.items())


def table(rows, over):
    lines = [
        "| environments (authorizer + each route) | route | requests/s | p50 ms | p99 ms | non-2xx | server connections (most) | environments' RSS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        c = row["environments"]
        for route, r in row["routes"].items():
            lines.append(f"| {row['n']} ({c['authorizer']} + {c[route]}) | {route} | {r['rps']:,.0f} | "
                         f"{r['p50']:.1f} | {r['p99']:.1f} | {r['non2xx'] + r['socket_errors']} | "
                         f"{row['server_connections']} of {SERVER_CONNECTIONS} | {row['rss_mib']:,} MiB |")
    s = over["sample"]
    lines += [
        "",
        f"Overload: all {over['held_server_connections']} server connections held by `pg_sleep`, 40 environments "
        f"of books-get under wrk -c40: {over['requests']:,} answers, p50 {over['p50']:.0f} ms, "
        f"p99 {over['p99']:.0f} ms, slowest {over['max']:.0f} ms (borrow timeout {BORROW_TIMEOUT_S} s, "
        f"function timeout {FUNCTION_TIMEOUT_S} s). A sample answer: {s['status']} "
        f"`{s['content_type']}`, `Retry-After: {s['retry_after']}`, in {s['seconds']} s.",
    ]
    return "\n".join(lines)


def write_benchmarks(text):
    path = os.path.join(ROOT, "BENCHMARKS.md")
    doc = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
    section = f"## Scale (make scale)\n\n{text}\n"
    if "## Scale (make scale)" in doc:
        doc = re.sub(r"## Scale \(make scale\)\n.*?(?=\n## |\Z)", section.rstrip("\n") + "\n", doc, flags=re.S)
    else:
        doc = doc.rstrip("\n") + "\n\n" + section
    open(path, "w").write(doc)


def main():
    workdir = tempfile.mkdtemp(prefix="bookshelf-scale-")
    log(f"logs in {workdir}")
    max_conn = psql(os.environ["DATABASE_URL"], "SHOW max_connections")
    log(f"PostgreSQL max_connections = {max_conn}")
    keys, books, tokens = setup(workdir)
    bouncer = PgBouncer("transaction", SERVER_CONNECTIONS, BORROW_TIMEOUT_S)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DATABASE_URL": bouncer.url("bookshelf_app"),
        "DB_POOLING": "transaction",
        "DB_CONNECT_TIMEOUT_MS": str(BORROW_TIMEOUT_S * 1000),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(FUNCTION_TIMEOUT_S),
        "BOOKSHELF_KEYS_FILE": keys,
        "RUST_LOG": "warn",
    }
    rows = []
    try:
        for n in NS:
            rows.append(measure(n, bouncer, env, workdir, books, tokens))
        over = overload(bouncer, env, workdir, books, tokens)
    finally:
        bouncer.stop()
    m = b.machine()
    machine = f"{m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}; {m['rustc']}; {m['date']}"
    text = (f"Machine: {machine}. PostgreSQL max_connections = {max_conn}; PgBouncer {SERVER_CONNECTIONS} server "
            f"connections, transaction pooling, query_wait_timeout {BORROW_TIMEOUT_S} s. One run of "
            f"{SECONDS} s per route and N; wrk with one connection per environment of the route.\n\n"
            + table(rows, over))
    print(text)
    write_benchmarks(text)
    with open(os.path.join(workdir, "scale.json"), "w") as f:
        json.dump({"rows": rows, "overload": over}, f, indent=1)


if __name__ == "__main__":
    main()
