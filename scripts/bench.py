#!/usr/bin/env python3
"""`make bench`: reproducible figures for Bookshelf, written to BENCHMARKS.md.

Runs under `bookshelf-dev with-postgres` (a throw-away PostgreSQL cluster on 127.0.0.1,
DATABASE_URL set), starts everything else it needs on 127.0.0.1 (the release dev server,
moto), and stops all of it. Figures are medians over repeated runs; the machine is shared
and noisy, so compare ratios, not absolute numbers across machines.
"""
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
# The functions' release build, and the dev server's own profile (Cargo.toml, `server`).
RELEASE = os.environ.get("BENCH_BIN_DIR", os.path.join(TARGET, "release"))
DEV = os.path.join(os.environ.get("BENCH_SERVER_DIR", os.path.join(TARGET, "server")), "bookshelf-dev")
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
WRK_SECONDS = int(os.environ.get("BENCH_WRK_SECONDS", "10"))
COLD_RUNS = int(os.environ.get("BENCH_COLD_RUNS", "10"))
ORDERS = int(os.environ.get("BENCH_ORDERS", "3000"))
SQS_ORDERS = int(os.environ.get("BENCH_SQS_ORDERS", "1000"))
VENV = os.environ.get("BOOKSHELF_TOOLS_VENV", os.path.expanduser("~/.cache/bookshelf/venv"))


def log(*args):
    print("[bench]", *args, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(method, url, body=None, token=None, headers=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            text = r.read()
            return r.status, (json.loads(text) if text else None)
    except urllib.error.HTTPError as e:
        text = e.read()
        return e.code, (json.loads(text) if text else None)


def wait_ready(url, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if call("GET", url + "/openapi.json")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("server did not become ready")


class Server:
    """The release dev server on a free port, against DATABASE_URL."""

    def __init__(self, keys_file, extra_env=None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PORT=str(self.port), RUST_LOG=os.environ.get("BENCH_RUST_LOG", "warn"), BOOKSHELF_KEYS_FILE=keys_file)
        env.update(extra_env or {})
        # BENCH_SERVER_LOG=FILE keeps the server's log (warnings and errors) for a look after.
        log_file = os.environ.get("BENCH_SERVER_LOG")
        out = open(log_file, "a") if log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen([DEV, "serve"], env=env, cwd=ROOT, stdout=out, stderr=out)
        wait_ready(self.url, self.proc)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)


def login(url, email, password):
    status, body = call("POST", url + "/auth/login", {"email": email, "password": password})
    assert status == 200, body
    return body["accessToken"]


def register(url, email):
    status, body = call("POST", url + "/auth/register", {"email": email, "password": "bench-password"})
    assert status == 201, body
    return body["accessToken"]


def percentile_ms(text, label):
    m = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return None
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def cpu_seconds(pid):
    """User + system CPU time of one process so far (/proc/<pid>/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(server, token, path, script=None):
    """wrk runs against `server`, with the server process's CPU time per request for each
    (a figure that survives a noisy box better than throughput does)."""
    results = []
    for _ in range(RUNS):
        cmd = ["wrk", "-t2", "-c32", f"-d{WRK_SECONDS}s", "--latency", "-H", f"Authorization: Bearer {token}"]
        if script:
            cmd += ["-s", script]
        cpu = cpu_seconds(server.proc.pid)
        out = subprocess.run(cmd + [server.url + path], capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(server.proc.pid) - cpu
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        results.append({"rps": rps, "p50": percentile_ms(out, "50"), "p99": percentile_ms(out, "99"),
                        "cpu_us": cpu * 1e6 / max(requests, 1),
                        "errors": int(non2xx.group(1)) if non2xx else 0})
    return {
        "rps": statistics.median(r["rps"] for r in results),
        "p50": statistics.median(r["p50"] for r in results),
        "p99": statistics.median(r["p99"] for r in results),
        "cpu_us": statistics.median(r["cpu_us"] for r in results),
        "errors": max(r["errors"] for r in results),
        "runs": results,
    }


# The peer comparison: the Node stack this project is measured against, run by its own
# script beside ours in one run. It lives outside this repository: skipped when absent.
PEER_BENCH = os.environ.get("PEER_BENCH", os.path.join(ROOT, "..", "shared", "bench", "side-by-side.sh"))


def side_by_side():
    """Runs PEER_BENCH on our release dev server; `None` (said in one line) without it."""
    if not os.path.exists(PEER_BENCH):
        log(f"peer comparison skipped: {PEER_BENCH} not found (set PEER_BENCH to the peer's side-by-side.sh)")
        return None
    # The script wants CHECKOUT/target/release/bookshelf-dev; ours may be built elsewhere.
    checkout = tempfile.mkdtemp(prefix="bookshelf-peer-")
    os.makedirs(os.path.join(checkout, "target", "release"))
    os.symlink(DEV, os.path.join(checkout, "target", "release", "bookshelf-dev"))
    os.symlink(os.path.join(ROOT, "template.yaml"), os.path.join(checkout, "template.yaml"))
    env = dict(os.environ, RUNS=str(RUNS), DURATION=f"{WRK_SECONDS}s")
    env.pop("DATABASE_URL", None)
    done = subprocess.run(["bash", PEER_BENCH, checkout], env=env, capture_output=True, text=True)
    shutil.rmtree(checkout, ignore_errors=True)
    if done.returncode != 0:
        log(f"peer comparison failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
        return None
    out = done.stdout
    runs = {"peer": [], "ours": []}
    for m in re.finditer(r"run (\d+) (peer|ours): ([\d.]+) req/s, p50 ([\d.]+) ms, p99 ([\d.]+) ms, "
                         r"server CPU (\d+) us/request", out):
        runs[m.group(2)].append({"rps": float(m.group(3)), "p50": float(m.group(4)),
                                 "p99": float(m.group(5)), "cpu_us": float(m.group(6))})
    if not runs["peer"] or not runs["ours"]:
        log("peer comparison printed no runs:\n" + out[-1000:])
        return None
    med = {who: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50", "p99", "cpu_us")}
           for who, rs in runs.items()}
    tps = re.search(r"raw DB SELECT.*median: ([\d.]+) tps", out)
    return {"script": PEER_BENCH, "runs": runs, "median": med,
            "ratio": {k: med["ours"][k] / med["peer"][k] for k in ("rps", "p99", "cpu_us")},
            "pgbench_tps": float(tps.group(1)) if tps else None}


def sequential_ms(url, token, path, n=100):
    """Median and p95 of n requests one after another (loopback, no concurrency): the
    server's own time plus a fraction of a millisecond of HTTP on 127.0.0.1."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        status, _ = call("GET", url + path, token=token)
        times.append((time.perf_counter() - t) * 1000)
        assert status == 200, status
    times.sort()
    return {"median": statistics.median(times), "p95": times[int(len(times) * 0.95) - 1], "n": n}


FOLLOWERS = int(os.environ.get("BENCH_FOLLOWERS", "100000"))


def fanout(url, admin, runs=3, followers=FOLLOWERS):
    """Seconds from `PUT /library/{bookId}` by a reader with `followers` followers to the
    activity in the feed of the follower the fan-out reaches last (in steps of 10,000
    followers a message, each handing the rest on)."""
    out = subprocess.run([DEV, "seed", "0", "--followers", str(followers)], check=True, cwd=ROOT,
                         capture_output=True, text=True).stdout
    last = re.search(r"reaches (\S+) last", out).group(1)
    star = login(url, "star@seed.bookshelf.local", "reader-password")
    follower = login(url, last, "reader-password")
    times = []
    for i in range(runs):
        status, book = call("POST", url + "/books", {"title": f"Fan-out {i}", "authors": ["Bench"],
                                                     "priceCents": 1, "stock": 0}, admin)
        assert status == 201, book
        t = time.perf_counter()
        status, _ = call("PUT", f"{url}/library/{book['id']}", {"status": "reading"}, star)
        assert status == 201, status
        while True:
            status, feed = call("GET", url + "/feed?limit=1", token=follower)
            if feed["items"] and (feed["items"][0].get("book") or {}).get("id") == book["id"]:
                break
            assert time.perf_counter() - t < 300, "not delivered within 300 s"
            time.sleep(0.01)
        times.append(time.perf_counter() - t)
    return {"median_s": statistics.median(times), "runs": times, "followers": followers}


PIPELINE_LUA = """
-- POST /orders until this thread has had its share of answers (ORDERS_PER_THREAD).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("ORDER_BODY")
local answered, share = 0, tonumber(os.getenv("ORDERS_PER_THREAD"))
function response(status, headers, body)
  answered = answered + 1
  if answered >= share then wrk.thread:stop() end
end
"""


def postgres_cpu_seconds():
    """CPU time of every PostgreSQL server process (the cluster runs as user postgres)."""
    total = 0.0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "postgres":
                    continue
            total += cpu_seconds(int(pid))
        except OSError:
            pass
    return total


def pooling_cost(keys_file, token, book_id):
    """What DB_POOLING=transaction (the deployed setting: unnamed statements, a lone read in
    its own transaction) costs against sqlx's statement cache on the hot read, both on a
    direct connection, interleaved: wrk on GET /books/{id}, the server's and PostgreSQL's
    CPU per request."""
    runs = {"session": [], "transaction": []}
    for _ in range(RUNS):
        for mode in runs:
            server = Server(keys_file, {"DB_POOLING": mode})
            try:
                cmd = ["wrk", "-t2", "-c32", f"-d{WRK_SECONDS}s", "--latency", "-H", f"Authorization: Bearer {token}",
                       server.url + f"/books/{book_id}"]
                cpu, pg = cpu_seconds(server.proc.pid), postgres_cpu_seconds()
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                cpu, pg = cpu_seconds(server.proc.pid) - cpu, postgres_cpu_seconds() - pg
                requests = int(re.search(r"(\d+) requests in", out).group(1))
                runs[mode].append({"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
                                   "p99": percentile_ms(out, "99"),
                                   "server_us": cpu * 1e6 / max(requests, 1),
                                   "postgres_us": pg * 1e6 / max(requests, 1)})
            finally:
                server.stop()
    med = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for mode, rs in runs.items()}
    return {"median": med, "runs": runs}


def psql(sql):
    out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", os.environ["DATABASE_URL"], "-c", sql],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split("|")


def recorded_sqs_actions(record):
    """The SQS actions moto recorded (MOTO_ENABLE_RECORDING), in order."""
    out = []
    if not record or not os.path.exists(record):
        return out
    with open(record) as f:
        for line in f:
            try:
                target = json.loads(line).get("headers", {}).get("X-Amz-Target", "")
            except ValueError:
                continue
            if target.startswith("AmazonSQS."):
                out.append(target[len("AmazonSQS."):])
    return out


def order_pipeline(url, token, book, orders, server=None, record=None):
    """Orders/s from the first `POST /orders` to the last `confirmed`: wrk (2 threads, 32
    connections) posts `orders` orders as fast as they are accepted while the worker
    confirms them; the span is the database's own clock, from the first order's
    `created_at` to the last confirmation's `updated_at`, so no polling interval is in it."""
    status, me = call("GET", url + "/users/me", token=token)
    assert status == 200, me
    script = os.path.join(tempfile.mkdtemp(prefix="bookshelf-pipeline-"), "orders.lua")
    with open(script, "w") as f:
        f.write(PIPELINE_LUA)
    env = dict(os.environ, ORDERS_PER_THREAD=str(orders // 2),
               ORDER_BODY=json.dumps({"items": [{"bookId": book, "quantity": 1}]}))
    rates, counts, requests, cpu = [], [], [], []
    for _ in range(RUNS):
        (since,) = psql("SELECT now()")
        actions_before = len(recorded_sqs_actions(record))
        cpu_before = cpu_seconds(server.proc.pid) if server else 0
        mine = f"user_id = '{me['id']}' AND created_at > '{since}'"
        # wrk sleeps out its whole -d even when every thread has stopped; SIGINT ends it.
        poster = subprocess.Popen(["wrk", "-t2", "-c32", "-d300s", "-s", script, "-H", f"Authorization: Bearer {token}",
                                   url + "/orders"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while poster.poll() is None:
            (placed,) = psql(f"SELECT count(*) FROM orders WHERE {mine}")
            if int(placed) >= orders or time.time() > deadline:
                poster.send_signal(signal.SIGINT)
                poster.wait(timeout=30)
            time.sleep(0.05)
        deadline = time.time() + 300
        while True:
            total, pending = map(int, psql(f"SELECT count(*), count(*) FILTER (WHERE status = 'pending') FROM orders WHERE {mine}"))
            if pending == 0:
                break
            assert time.time() < deadline, f"{pending} of {total} orders still pending after 300 s"
            time.sleep(0.05)
        confirmed, span = psql(f"SELECT count(*) FILTER (WHERE status = 'confirmed'), "
                               f"extract(epoch FROM max(updated_at) - min(created_at)) FROM orders WHERE {mine}")
        assert int(confirmed) == total >= orders, (confirmed, total, orders)
        rates.append(total / float(span))
        counts.append(total)
        if server:
            cpu.append((cpu_seconds(server.proc.pid) - cpu_before) * 1e6 / total)
        if record:
            actions = recorded_sqs_actions(record)[actions_before:]
            requests.append({"per_order": len(actions) / total,
                             "by_action": {a: actions.count(a) for a in sorted(set(actions))}})
    out = {"orders_per_s": statistics.median(rates), "runs": rates, "orders": statistics.median(counts)}
    if cpu:
        out["cpu_us_per_order"] = statistics.median(cpu)
    if requests:
        out["sqs_requests_per_order"] = statistics.median(r["per_order"] for r in requests)
        out["sqs_requests"] = requests
    return out


def sqs_cost(keys_file, book_id):
    """The order pipeline through moto with its request recorder on: SQS requests per order
    and the dev server's own CPU per order (moto's CPU is not ours). `None` without moto."""
    moto_bin = os.path.join(VENV, "bin", "moto_server")
    if not os.path.exists(moto_bin):
        log("SQS pipeline skipped: moto_server is not installed (scripts/ensure-tools.sh)")
        return None
    port = free_port()
    record = os.path.join(tempfile.mkdtemp(prefix="bookshelf-moto-"), "record.jsonl")
    moto = subprocess.Popen([moto_bin, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            env=dict(os.environ, MOTO_ENABLE_RECORDING="True", MOTO_RECORDER_FILEPATH=record))
    try:
        time.sleep(1.5)
        server = Server(keys_file, {"SQS_ENDPOINT": f"http://127.0.0.1:{port}"})
        try:
            user = login(server.url, "bench@example.org", "bench-password")
            log("order pipeline, SQS (moto, recording)")
            return order_pipeline(server.url, user, book_id, SQS_ORDERS, server=server, record=record)
        finally:
            server.stop()
    finally:
        moto.terminate()
        moto.wait()


def sqs_cost_lines(r):
    """The SQS pipeline cost section (also spliced in alone by BENCH_ONLY=sqs)."""
    p = r.get("sqs_cost")
    if not p:
        return []
    actions = {}
    for run in p["sqs_requests"]:
        for a, n in run["by_action"].items():
            actions.setdefault(a, []).append(n / max(p["orders"], 1))
    mix = ", ".join(f"{a} {statistics.median(v):.3f}" for a, v in sorted(actions.items()))
    return [
        "",
        "## SQS pipeline cost",
        "",
        f"{p['orders']:,.0f} orders per run posted by wrk through the dev server with its queues on moto (in server",
        "mode, recording every request): SQS requests per order (sends, receives including the pollers' empty",
        "long polls during the run, deletes), and the dev server's own CPU per order (moto's excluded: it is",
        "single-threaded and spends milliseconds of its own per order, so orders/s through it measures moto and is",
        "shown for context only). Before: 0.37 requests per order (the last full `make bench`).",
        "",
        "| SQS requests per order | server CPU µs per order | orders/s through moto (context) |",
        "|---:|---:|---:|",
        f"| {p['sqs_requests_per_order']:.3f} | {p['cpu_us_per_order']:.0f} | {p['orders_per_s']:.0f} |",
        "",
        f"Requests per order by action: {mix}.",
    ]


# --------------------------------------------------------------------------- imports, export
IMPORT_ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "10000"))
EXPORT_ENTRIES = int(os.environ.get("BENCH_EXPORT_ENTRIES", "20000"))
GOODREADS_HEADER = ("Book Id,Title,Author,Author l-f,Additional Authors,ISBN,ISBN13,My Rating,Average Rating,"
                    "Publisher,Binding,Number of Pages,Year Published,Original Publication Year,Date Read,Date Added,"
                    "Bookshelves,Bookshelves with positions,Exclusive Shelf,My Review,Spoiler,Private Notes,Read Count,"
                    "Owned Copies")


def goodreads_file(tag, rows):
    """A Goodreads export of `rows` books none of the catalog has: half with an ISBN-13, half
    known by title and author only; a third read (with a day), the rest to-read."""
    lines = [GOODREADS_HEADER]
    for i in range(rows):
        isbn = ""
        if i % 2 == 0:
            core = f"979{abs(hash((tag, i))) % 10**9:09d}"
            check = (10 - sum((3 if k % 2 else 1) * int(d) for k, d in enumerate(core)) % 10) % 10
            isbn = f'="{core}{check}"'
        shelf, day = ("read", "2024/05/17") if i % 3 == 0 else ("to-read", "")
        lines.append(f'{i},Imported {tag} {i},Author {i % 997},,,,{isbn},{i % 6},,,,{100 + i % 400},1999,,'
                     f'{day},2024/01/02,,,{shelf},Review {i}<br/>line two,,,,')
    return ("\n".join(lines) + "\n").encode()


def put_upload(url, headers, data):
    req = urllib.request.Request(url, data=data, method="PUT", headers=headers)
    with urllib.request.urlopen(req, timeout=120) as r:
        return r.status


def import_run(url, token, tag, rows):
    """Seconds from the start of the upload to `completed`, and the import."""
    status, created = call("POST", url + "/imports", {"filename": f"{tag}.csv"}, token)
    assert status == 201, created
    data = goodreads_file(tag, rows)
    started = time.perf_counter()
    assert put_upload(created["uploadUrl"], created["uploadHeaders"], data) == 200
    while True:
        status, now = call("GET", url + f"/imports/{created['id']}", token=token)
        assert status == 200, now
        if now["status"] in ("completed", "failed"):
            elapsed = time.perf_counter() - started
            assert now["status"] == "completed" and now["rows"] == rows, now
            return elapsed, now
        time.sleep(0.05)


def imports(url, runs=RUNS, rows=IMPORT_ROWS):
    """A Goodreads file of `rows` new books, uploaded and applied; each run a new reader and
    new books (every row makes its book), medians over the runs."""
    seconds = []
    for run in range(runs):
        token = register(url, f"importer{run}-{uuid_tag()}@example.org")
        elapsed, done = import_run(url, token, f"run{run}{uuid_tag()}", rows)
        log(f"  import of {rows:,} rows: {elapsed:.1f} s ({done['booksCreated']:,} books created)")
        seconds.append(elapsed)
    median = statistics.median(seconds)
    return {"rows": rows, "runs": [round(s, 2) for s in seconds], "median_s": round(median, 2),
            "rows_per_s": round(rows / median)}


def uuid_tag():
    import uuid
    return uuid.uuid4().hex[:8]


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def seed_export_reader(entries, email):
    """A reader with `entries` library entries (catalog books, made here as needed), each with
    a finished read and a 5,000-character review, straight into the database."""
    psql(f"""
        INSERT INTO books (id, title, authors, price_cents, stock)
        SELECT gen_random_uuid(), 'Export filler ' || g, ARRAY['Filler Author'], NULL, 0
        FROM generate_series(1, greatest(0, {entries} - (SELECT count(*) FROM books))) AS g""")
    user = psql(f"SELECT id FROM users WHERE email = '{email}'")[0]
    psql(f"""
        INSERT INTO library_entries (user_id, book_id, status, rating, review, added_at)
        SELECT '{user}', id, 'read', 1 + (abs(hashtext(id::text)) % 5), left(repeat('review text ', 417), 5000),
               now() - make_interval(mins => row_number() OVER (ORDER BY id)::int)
        FROM (SELECT id FROM books ORDER BY id LIMIT {entries}) AS b""")
    psql(f"""
        INSERT INTO reads (id, user_id, book_id, started_at, finished_at, percent)
        SELECT gen_random_uuid(), user_id, book_id, added_at, added_at + interval '3 days', 100
        FROM library_entries WHERE user_id = '{user}'""")


def export_run(server, token, accept):
    """Seconds to the last byte, bytes, and the serving process's RSS growth (sampled every
    5 ms while the body streams) over its RSS just before."""
    before = rss_kb(server.proc.pid)
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(server.proc.pid))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    req = urllib.request.Request(server.url + "/library/export", headers={"Authorization": f"Bearer {token}",
                                                                          "Accept": accept})
    started = time.perf_counter()
    size = 0
    first = None
    with urllib.request.urlopen(req, timeout=600) as r:
        assert r.status == 200
        while True:
            chunk = r.read(1 << 16)
            if first is None:
                first = time.perf_counter() - started
            if not chunk:
                break
            size += len(chunk)
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    return elapsed, first, size, (peak[0] - before) / 1024


def exports(server, runs=RUNS):
    """GET /library/export of a 2,000- and a 20,000-entry library (reads, 5,000-character
    reviews): time to first and last byte, size, and the server's RSS growth while serving."""
    out = {}
    for entries in (EXPORT_ENTRIES // 10, EXPORT_ENTRIES):
        email = f"exporter{entries}-{uuid_tag()}@example.org"
        token = register(server.url, email)
        seed_export_reader(entries, email)
        for accept in ("application/json", "text/csv"):
            rows = [export_run(server, token, accept) for _ in range(runs)]
            last = statistics.median(r[0] for r in rows)
            first = statistics.median(r[1] for r in rows)
            growth = statistics.median(r[3] for r in rows)
            log(f"  export of {entries:,} entries ({accept}): {rows[0][2] / 1e6:.1f} MB, first byte {first * 1000:.0f} ms, "
                f"last byte {last:.2f} s, RSS +{growth:.1f} MB")
            out[f"{entries} {accept}"] = {"entries": entries, "accept": accept, "mb": round(rows[0][2] / 1e6, 1),
                                          "first_byte_ms": round(first * 1000), "last_byte_s": round(last, 2),
                                          "rss_growth_mb": round(growth, 1),
                                          "mb_per_s": round(rows[0][2] / 1e6 / last, 1)}
    return out


# --------------------------------------------------------------------------- sync

SYNC_CHANGES = int(os.environ.get("BENCH_SYNC_CHANGES", "100000"))
WEBHOOK_EVENTS = int(os.environ.get("BENCH_WEBHOOK_EVENTS", "2000"))


def percentiles(times):
    times = sorted(times)
    return {"p50": statistics.median(times), "p99": times[max(0, int(len(times) * 0.99) - 1)], "n": len(times)}


def change_cursor(seq):
    import base64
    return base64.urlsafe_b64encode(f"v1c.{seq}".encode()).decode().rstrip("=")


def changes_feed(server):
    """GET /changes for a reader with SYNC_CHANGES changes (entries written straight into the
    database: the triggers record each one): the first page and a page resumed from the middle,
    100 changes each, one request at a time (p50/p99 of 200) and under wrk."""
    email = f"syncer-{uuid_tag()}@example.org"
    token = register(server.url, email)
    user = psql(f"SELECT id FROM users WHERE email = '{email}'")[0]
    psql(f"""
        INSERT INTO books (id, title, authors, price_cents, stock)
        SELECT gen_random_uuid(), 'Sync filler ' || g, ARRAY['Filler Author'], NULL, 0
        FROM generate_series(1, greatest(0, {SYNC_CHANGES} - (SELECT count(*) FROM books))) AS g""")
    psql(f"""
        INSERT INTO library_entries (user_id, book_id, status)
        SELECT '{user}', id, 'want_to_read' FROM (SELECT id FROM books ORDER BY id LIMIT {SYNC_CHANGES}) AS b""")
    psql("ANALYZE changes")
    head = int(psql(f"SELECT seq FROM change_heads WHERE user_id = '{user}'")[0])
    assert head >= SYNC_CHANGES, head
    out = {"changes": head}
    for name, path in (("first page", "/changes?limit=100"),
                       ("resumed page", f"/changes?limit=100&cursor={change_cursor(head // 2)}")):
        runs = []
        for _ in range(RUNS):
            times = []
            for _ in range(200):
                t = time.perf_counter()
                status, body = call("GET", server.url + path, token=token)
                times.append((time.perf_counter() - t) * 1000)
                assert status == 200 and len(body["items"]) == 100, (status, body)
            runs.append(percentiles(times))
        out[name] = {"p50": statistics.median(r["p50"] for r in runs), "p99": statistics.median(r["p99"] for r in runs),
                     "wrk": wrk(server, token, path)}
        log(f"  GET /changes {name}: p50 {out[name]['p50']:.2f} ms, p99 {out[name]['p99']:.2f} ms, "
            f"{out[name]['wrk']['rps']:.0f} req/s under wrk")
    return out


def psql_rows(sql):
    """Every row of a query, each a list of its columns."""
    out = subprocess.run(["psql", "-X", "-At", "-v", "ON_ERROR_STOP=1", os.environ["DATABASE_URL"], "-c", sql],
                         capture_output=True, text=True, check=True).stdout
    return [line.split("|") for line in out.splitlines() if line]


def plain_cursor(at_micros, id_):
    import base64
    return base64.urlsafe_b64encode(f"v1.{at_micros}.{id_}".encode()).decode().rstrip("=")


def timed_path(server, token, path):
    """A path one request at a time (p50/p99 of 100 per run, medians of RUNS runs) and under wrk."""
    runs = []
    for _ in range(RUNS):
        times = []
        for _ in range(100):
            t = time.perf_counter()
            status, body = call("GET", server.url + path, token=token)
            times.append((time.perf_counter() - t) * 1000)
            assert status == 200, (path, status, body)
        runs.append(percentiles(times))
    out = {"p50": statistics.median(r["p50"] for r in runs), "p99": statistics.median(r["p99"] for r in runs),
           "items": len(body["items"]), "wrk": wrk(server, token, path)}
    log(f"  GET {path}: p50 {out['p50']:.2f} ms, p99 {out['p99']:.2f} ms one at a time; "
        f"{out['wrk']['rps']:.0f} req/s, p99 {out['wrk']['p99']:.1f} ms under wrk")
    return out


CATALOG_BOOKS = int(os.environ.get("BENCH_CATALOG_BOOKS", "1000000"))

# The statements GET /books sends for these filters (storage::books::{search, list_recent}),
# EXPLAINed for the notes. Kept beside the bench: a change there wants one here.
SEARCH_TIER_SQL = {
    1: "SELECT id, created_at FROM books WHERE heading_search @@ websearch_to_tsquery('english', '{q}') "
       "ORDER BY created_at DESC, id DESC LIMIT 21",
    2: "SELECT id, created_at FROM books WHERE search @@ websearch_to_tsquery('english', '{q}') "
       "AND NOT heading_search @@ websearch_to_tsquery('english', '{q}') ORDER BY created_at DESC, id DESC LIMIT 21",
}
FILTER_SQL = ("SELECT b.id FROM {table} f JOIN books b ON b.id = f.book_id WHERE f.{column} = '{value}' "
              "ORDER BY f.created_at, f.book_id LIMIT 21")


def explain(sql):
    """The plan's node lines with their actual times (no buffers, no costs)."""
    rows = psql_rows(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING ON, SUMMARY ON) {sql}")
    return [r[0] for r in rows]


def catalog_at_scale(server, token):
    """GET /books over CATALOG_BOOKS books (bookshelf-dev seed): a two-word search (a title's
    words, and an author's name as words), ?author= and ?tag= (a common and a rare value
    each), first pages and a deep page, one at a time and under wrk; with the plans."""
    have = int(psql("SELECT count(*) FROM books")[0])
    out = {"seed": None}
    if have < CATALOG_BOOKS:
        log(f"seeding {CATALOG_BOOKS - have:,} books")
        started = time.perf_counter()
        subprocess.run([DEV, "seed", str(CATALOG_BOOKS - have)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        out["seed"] = {"books": CATALOG_BOOKS - have, "seconds": time.perf_counter() - started}
        log(f"  seeded in {out['seed']['seconds']:.1f} s")
    out["books"] = int(psql("SELECT count(*) FROM books")[0])
    # A book of one rare author and a rare tag, as a reader adds one to the shared catalog.
    status, rare = call("POST", server.url + "/books", {"title": "Small Press Poems", "authors": ["Wren Oduya-Castell"],
                                                        "tags": ["chapbook"]}, token)
    assert status == 201, rare
    psql("ANALYZE books")
    cases = [
        ("q: a title's two words", "q=silent%20river", "silent river"),
        ("q: an author's name", "q=ada%20okafor", "ada okafor"),
        ("author: 2,000+ books", "author=ada%20okafor", None),
        ("author: one book", "author=wren%20oduya-castell", None),
        ("tag: 75,000 books", "tag=fantasy", None),
        ("tag: one book", "tag=chapbook", None),
    ]
    out["cases"] = {}
    for name, query, words in cases:
        count = {"q": lambda: psql(f"SELECT count(*) FROM books WHERE search @@ websearch_to_tsquery('english', '{words}')"),
                 "author": lambda: psql("SELECT count(*) FROM books WHERE authors_ci @> ARRAY['" +
                                        urllib.parse.unquote(query.split("=", 1)[1]) + "']"),
                 "tag": lambda: psql("SELECT count(*) FROM books WHERE tags @> ARRAY['" + query.split("=", 1)[1] + "']")}
        matches = int(count[query.split("=", 1)[0]]()[0])
        log(f"GET /books?{query} ({matches:,} matches)")
        first = timed_path(server, token, f"/books?{query}&limit=20")
        # A deep page: 25 pages in (500 books), when there are that many.
        path, cursor = f"/books?{query}&limit=20", None
        for _ in range(25):
            status, body = call("GET", server.url + path + (f"&cursor={cursor}" if cursor else ""), token=token)
            assert status == 200, body
            if not body.get("nextCursor"):
                break
            cursor = body["nextCursor"]
        deep = timed_path(server, token, f"{path}&cursor={cursor}") if cursor and matches > 1000 else None
        if words:
            # The second tier runs only when the first leaves the page short.
            plan = ["tier 1:"] + explain(SEARCH_TIER_SQL[1].format(q=words))
            if first["items"] < 20:
                plan += ["tier 2:"] + explain(SEARCH_TIER_SQL[2].format(q=words))
        else:
            key, value = query.split("=", 1)
            value = urllib.parse.unquote(value)
            table, column = ("book_authors", "author_ci") if key == "author" else ("book_tags", "tag")
            plan = explain(FILTER_SQL.format(table=table, column=column, value=value))
        out["cases"][name] = {"query": query, "matches": matches, "first": first, "deep": deep, "plan": plan}
    return out


FEED_FOLLOWEES = 1000
FEED_ROWS = 100_000
LIBRARY_ENTRIES = 20_000


def feed_and_library_at_size(server):
    """A reader following 1,000 people, 900 of them private (their 90,000 book activities the
    newest of the reader's 100,000 feed rows, 100 public people's 10,000 the oldest): GET /feed
    first page and a deep page. A reader with 20,000 library entries: GET /library and, public,
    GET /users/{id}/library as another reader sees it, first and deep pages."""
    tag = uuid_tag()
    email = f"feeder-{tag}@example.org"
    reader = register(server.url, email)
    viewer = register(server.url, f"viewer-{tag}@example.org")
    me = psql(f"SELECT id FROM users WHERE email = '{email}'")[0]
    per = FEED_ROWS // FEED_FOLLOWEES
    log(f"seeding {FEED_FOLLOWEES:,} followees, {FEED_ROWS:,} feed rows, {LIBRARY_ENTRIES:,} library entries")
    psql(f"""
        INSERT INTO users (id, email, password_hash, display_name, library_visibility)
        SELECT gen_random_uuid(), 'followee-{tag}-' || g || '@example.org', '$argon2id$bench', 'Followee ' || g,
               CASE WHEN g <= {FEED_FOLLOWEES // 10} THEN 'public' ELSE 'private' END
        FROM generate_series(1, {FEED_FOLLOWEES}) AS g""")
    psql(f"""
        INSERT INTO follows (follower_id, followee_id, created_at)
        SELECT '{me}', id, now() - interval '400 days' FROM users WHERE email LIKE 'followee-{tag}-%'""")
    # Fanned-out rows as the fan-out writes them (hidden: a private actor's book activity).
    psql(f"""
        WITH b AS (SELECT id, row_number() OVER () AS n FROM (SELECT id FROM books LIMIT {per}) AS x),
        acts AS (
          INSERT INTO activities (id, actor_id, type, book_id, status, created_at)
          SELECT gen_random_uuid(), u.id, 'shelved', b.id, 'reading',
                 CASE WHEN u.library_visibility = 'public'
                      THEN now() - interval '300 days' + g * interval '1 minute' + random() * interval '1 day'
                      ELSE now() - interval '200 days' + random() * interval '199 days' END
          FROM users u CROSS JOIN generate_series(1, {per}) AS g JOIN b ON b.n = g
          WHERE u.email LIKE 'followee-{tag}-%'
          RETURNING id, actor_id, created_at)
        INSERT INTO feed_items (reader_id, activity_id, actor_id, created_at, hidden)
        SELECT '{me}', acts.id, acts.actor_id, acts.created_at, u.library_visibility = 'private'
        FROM acts JOIN users u ON u.id = acts.actor_id""")
    psql(f"""
        INSERT INTO library_entries (user_id, book_id, status, added_at)
        SELECT '{me}', id, (ARRAY['want_to_read', 'reading', 'read'])[1 + (n % 3)],
               now() - interval '3 years' + n * interval '1 hour'
        FROM (SELECT id, row_number() OVER () AS n FROM (SELECT id FROM books LIMIT {LIBRARY_ENTRIES}) AS x) AS b""")
    psql("ANALYZE feed_items; ANALYZE library_entries; ANALYZE activities; ANALYZE follows")
    status, body = call("PATCH", server.url + "/users/me", {"libraryVisibility": "public"}, reader)
    assert status == 200, body
    deep_feed = psql_rows(f"""
        SELECT (extract(epoch FROM created_at) * 1000000)::bigint, activity_id FROM feed_items
        WHERE reader_id = '{me}' AND NOT hidden ORDER BY created_at DESC, activity_id DESC OFFSET 5000 LIMIT 1""")[0]
    deep_lib = psql_rows(f"""
        SELECT (extract(epoch FROM added_at) * 1000000)::bigint, book_id FROM library_entries
        WHERE user_id = '{me}' ORDER BY added_at, book_id OFFSET 10000 LIMIT 1""")[0]
    feed_cursor = plain_cursor(*deep_feed)
    lib_cursor = plain_cursor(*deep_lib)
    out = {}
    for name, token, path in [
        ("GET /feed, first page", reader, "/feed?limit=20"),
        ("GET /feed, 5,000 rows deep", reader, f"/feed?limit=20&cursor={feed_cursor}"),
        ("GET /library, first page", reader, "/library?limit=20"),
        ("GET /library, 10,000 entries deep", reader, f"/library?limit=20&cursor={lib_cursor}"),
        ("GET /users/{id}/library, first page", viewer, f"/users/{me}/library?limit=20"),
        ("GET /users/{id}/library, 10,000 entries deep", viewer, f"/users/{me}/library?limit=20&cursor={lib_cursor}"),
    ]:
        log(name)
        out[name] = timed_path(server, token, path)
        assert out[name]["items"] == 20, (name, out[name]["items"])
    return out


class HookReceiver:
    """A webhook receiver on 127.0.0.1: answers 200, notes when each event id arrived."""

    def __init__(self):
        self.arrived = {}
        self.lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0) or 0)
                body = json.loads(self.rfile.read(length))
                with receiver.lock:
                    receiver.arrived[body["data"].get("id", body["id"])] = time.perf_counter()
                    receiver.lock.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        class Server(ThreadingHTTPServer):
            # The default listen backlog (5) drops connections a burst of deliveries opens at
            # once, and the sender's SYN is retried after a second: the receiver's limit, not
            # ours, so a receiver with a real backlog.
            request_queue_size = 256

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, n, timeout=120):
        deadline = time.time() + timeout
        with self.lock:
            while len(self.arrived) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError(f"{len(self.arrived)} of {n} deliveries arrived")
                self.lock.wait(left)

    def close(self):
        self.server.shutdown()


def webhooks(server, admin):
    """Webhook delivery through the dev server's dispatcher, sender and recorder: latency from
    the answer of the request that made a change to the receiver's arrival (200 entries shelved
    one after another, each once the previous delivery arrived), and deliveries/s for
    WEBHOOK_EVENTS events made at once."""
    out = {"latency": [], "throughput": []}
    for run in range(RUNS):
        receiver = HookReceiver()
        email = f"hooked-{uuid_tag()}@example.org"
        token = register(server.url, email)
        status, hook = call("POST", server.url + "/webhooks", {"url": receiver.url, "events": ["entry.upserted"]}, token)
        assert status == 201, hook
        books = psql(f"SELECT id FROM books ORDER BY id LIMIT {200 + WEBHOOK_EVENTS}")[0].splitlines()
        answered = {}
        for n, book in enumerate(books[:200]):
            status, _ = call("PUT", server.url + f"/library/{book}", {"status": "reading"}, token)
            answered[book] = time.perf_counter()
            assert status == 201, status
            # One at a time: the latency of a delivery, not of a queue of them.
            receiver.wait_for(n + 1, timeout=30)
        latency = percentiles([(receiver.arrived[b] - answered[b]) * 1000 for b in books[:200]])
        user = psql(f"SELECT id FROM users WHERE email = '{email}'")[0]
        rest = books[200:]
        started = time.perf_counter()
        psql(f"""INSERT INTO library_entries (user_id, book_id, status)
                 SELECT '{user}', id, 'read' FROM books WHERE id = ANY(ARRAY[{','.join(f"'{b}'" for b in rest)}]::uuid[])""")
        receiver.wait_for(200 + len(rest))
        rate = len(rest) / (max(receiver.arrived[b] for b in rest) - started)
        receiver.close()
        out["latency"].append(latency)
        out["throughput"].append(rate)
        log(f"  webhook latency p50 {latency['p50']:.0f} ms, p99 {latency['p99']:.0f} ms; {rate:.0f} deliveries/s")
    return {"p50": statistics.median(l["p50"] for l in out["latency"]),
            "p99": statistics.median(l["p99"] for l in out["latency"]),
            "deliveries_per_s": statistics.median(out["throughput"]),
            "events": WEBHOOK_EVENTS, "runs": out}


def stats_bench(server):
    """GET /users/me/stats for the seeded reader (5,000 finished reads, 20,000 sessions): one
    at a time, and under wrk. Answered from the cache keyed by the reader's change head: the
    first request computes, every later one (nothing changed) reads one row."""
    log("seeding a reader with a year of reading")
    out = subprocess.run([DEV, "seed", "0", "--readers", "1"], check=True, cwd=ROOT, capture_output=True, text=True).stdout
    reader = login(server.url, "reader1@seed.bookshelf.local", "reader-password")
    started = time.perf_counter()
    status, stats = call("GET", server.url + "/users/me/stats", token=reader)
    first_ms = (time.perf_counter() - started) * 1000
    assert status == 200 and stats["booksFinished"] >= 5000, (status, stats, out)
    seq = sequential_ms(server.url, reader, "/users/me/stats")
    return {"sequential": dict(seq, reads=stats["booksFinished"], minutes=stats["minutesRead"], first_ms=first_ms),
            "wrk": wrk(server, reader, "/users/me/stats")}


def stats_lines(r):
    """The Reading stats section (also spliced in alone by BENCH_ONLY=stats)."""
    if not r.get("stats"):
        return []
    st = r["stats"]["sequential"]
    w = r["stats"]["wrk"]
    return [
        "",
        "## Reading stats",
        "",
        f"`GET /users/me/stats` for a reader with {st['reads']:,} finished reads and 20,000 ended sessions this year",
        "(`bookshelf-dev seed --readers 1`). The answer is cached per reader and year, keyed by the reader's",
        "change-feed head (`stats_cache`): any write that moves a figure moves the head, so a cached body is",
        "exact, and a repeated request reads one row. The first request after a change computes (four indexed",
        f"queries, here {st['first_ms']:.1f} ms). One at a time ({st['n']} requests) and under wrk (`-t2 -c32`). Goal:",
        "≥ 1,000 requests/s with p99 ≤ 50 ms under wrk.",
        "",
        "| | sequential median ms | sequential p95 ms | wrk requests/s | wrk p50 ms | wrk p99 ms | server CPU µs/request |",
        "|---|---:|---:|---:|---:|---:|---:|",
        "| before (recomputed each request; `make bench` of 2026-12-06) | 22.8 | 34.3 | 110 | 280.47 | 421.90 | 298 |",
        f"| after (cached by change head) | {st['median']:.2f} | {st['p95']:.2f} | {w['rps']:,.0f} | {fmt_ms(w['p50'])} | "
        f"{fmt_ms(w['p99'])} | {w['cpu_us']:.0f} |",
    ]


def size_lines(r):
    """The Catalog search at size and Feed and library at size sections (also spliced in
    alone by BENCH_ONLY=size)."""
    if not r.get("size"):
        return []
    c, f = r["size"]["catalog"], r["size"]["feed"]
    seed = c.get("seed")
    lines = [
        "",
        "## Catalog search at size",
        "",
        f"`GET /books` over {c['books']:,} books (`bookshelf-dev seed`" +
        (f": {seed['books']:,} books added in {seed['seconds']:.0f} s, four connections at once)." if seed else ")."),
        "A search is two tiers of relevance (title or authors match, then description only), newest first within",
        "each, the second read only when the first leaves the page short; each tier is one statement planned with",
        "its values, so PostgreSQL takes the GIN bitmap when the words match few books and the (created_at, id)",
        "walk that stops at the page when they match many. `?author=` and `?tag=` read one index range of",
        "`book_authors`/`book_tags`. One at a time (p50/p99 of 100 requests, medians of 3 runs) and under",
        "wrk (`-t2 -c32`); the deep page is 25 pages (500 books) in. Goal: median ≤ 20 ms one at a time, p99 ≤ 100 ms",
        "under wrk.",
        "",
        "| query | matches | page | p50 ms | p99 ms | wrk requests/s | wrk p50 ms | wrk p99 ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for name, case in c["cases"].items():
        for page in ("first", "deep"):
            m = case[page]
            if not m:
                continue
            w = m["wrk"]
            lines.append(f"| {name} (`?{case['query']}`) | {case['matches']:,} | {page} | {m['p50']:.2f} | {m['p99']:.2f} | "
                         f"{w['rps']:,.0f} | {fmt_ms(w['p50'])} | {fmt_ms(w['p99'])} |")
    lines += [
        "",
        "Before (ranked by `ts_rank` over every match; filters from the generic plan PostgreSQL caches after five",
        "executions; 1,000,000 seeded books, psql on the same machine): `q=ada okafor` 24 ms one at a time",
        "(5,506 matches ranked); `?author=` of a one-book author 1,248 ms (the cached plan walks all 1,000,000",
        "books); `?tag=` of a one-book tag 622 ms planned with its value (a tag missing from the column's",
        "statistics is guessed common, so the planner walks every book in creation order). Seeding 1,000,000",
        "books took 178 s on one connection.",
        "",
        "Plans (EXPLAIN ANALYZE of the statement each request sends, first page):",
        "",
    ]
    for name, case in c["cases"].items():
        lines += [f"- {name}:", "", "  ```"] + [f"  {l}" for l in case["plan"]] + ["  ```", ""]
    lines += [
        "## Feed and library at size",
        "",
        f"A reader following {FEED_FOLLOWEES:,} people, 900 of them private, whose {FEED_ROWS:,} feed rows have the",
        "private readers' 90,000 book activities as the newest; and a library of 20,000 entries, read by its",
        "owner and (public) by another reader. Feed rows say whether they are hidden and the feed walks an index",
        "of shown rows; every list binds its keyset bound, so a deep page starts at its key.",
        "One at a time (p50/p99 of 100, medians of 3) and under wrk (`-t2 -c32`). Goal: p99 ≤ 20 ms one at a time;",
        "the wrk columns show the same requests queued 32 deep on 2 cores shared with wrk and PostgreSQL.",
        "",
        "| request | p50 ms | p99 ms | wrk requests/s | wrk p50 ms | wrk p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, m in f.items():
        w = m["wrk"]
        lines.append(f"| {name} | {m['p50']:.2f} | {m['p99']:.2f} | {w['rps']:,.0f} | {fmt_ms(w['p50'])} | {fmt_ms(w['p99'])} |")
    lines += [
        "",
        "Before (EXPLAIN ANALYZE of the former statements on the same data): the feed's first page walked and",
        "dropped 90,000 hidden rows, 358 ms; a deep page of any list bound by `$at IS NULL OR (at, id) > ...`",
        "walked from the first row once PostgreSQL switched to its generic plan (after five executions): GET",
        "/library 10,000 entries deep walked and dropped 10,000 rows (2.5 ms, growing with the depth; an export",
        "walking a library page by page grew with its square).",
    ]
    return lines


def sync_lines(r):
    """The Sync section (also spliced in alone by BENCH_ONLY=sync)."""
    if not r.get("sync"):
        return []
    c, w = r["sync"]["changes"], r["sync"]["webhooks"]
    lines = [
        "",
        "## Sync",
        "",
        f"`GET /changes?limit=100` for a reader with {c['changes']:,} changes (entries written straight into the",
        "database; the triggers record each): the first page, and a page resumed from a cursor in the middle.",
        "One request at a time (200 a run), and under wrk (`-t2 -c32`).",
        "",
        "| page | p50 ms | p99 ms | wrk req/s | wrk p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("first page", "resumed page"):
        p = c[name]
        lines.append(f"| {name} | {p['p50']:.2f} | {p['p99']:.2f} | {p['wrk']['rps']:,.0f} | {fmt_ms(p['wrk']['p99'])} |")
    lines += [
        "",
        "Webhooks, locally (the dev server's dispatcher polls every 200 ms; deployed it polls every second):",
        "from the answer of a `PUT /library/{bookId}` to the arrival of its `entry.upserted` at a receiver on",
        f"127.0.0.1 (200, each after the previous arrived), and deliveries/s for {w['events']:,} events made in one",
        "transaction (the sender posts ten at once per poller, two pollers, a new connection per delivery).",
        "",
        "| latency p50 ms | latency p99 ms | deliveries/s |",
        "|---:|---:|---:|",
        f"| {w['p50']:.0f} | {w['p99']:.0f} | {w['deliveries_per_s']:,.0f} |",
    ]
    return lines


# --------------------------------------------------------------------------- cold start

class RuntimeApi:
    """A minimal Lambda Runtime API: hands out `events` one per /next, records timings."""

    def __init__(self, event, count):
        self.event = event
        self.remaining = count
        self.first_poll = None
        self.handed = {}
        self.done = {}
        self.lock = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                if not self.path.endswith("/runtime/invocation/next"):
                    self.send_error(404)
                    return
                now = time.perf_counter()
                with api.lock:
                    if api.first_poll is None:
                        api.first_poll = now
                    while api.remaining == 0:
                        api.lock.wait()
                    api.remaining -= 1
                    rid = f"req-{len(api.handed)}"
                    api.handed[rid] = time.perf_counter()
                body = api.event
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", rid)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:eu-west-1:123456789012:function:bench")
                self.send_header("Lambda-Runtime-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0) or 0)
                self.rfile.read(length)
                parts = self.path.split("/")
                with api.lock:
                    if "invocation" in parts:
                        api.done[parts[parts.index("invocation") + 1]] = time.perf_counter()
                    api.lock.notify_all()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        # A killed function drops its connection mid-request; that is the point, not an error.
        self.server.handle_error = lambda *_: None
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def address(self):
        return f"127.0.0.1:{self.server.server_address[1]}"

    def release(self, n):
        with self.lock:
            self.remaining += n
            self.lock.notify_all()

    def wait_done(self, n, timeout=30):
        deadline = time.time() + timeout
        with self.lock:
            while len(self.done) < n:
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError("function did not answer")
                self.lock.wait(left)

    def close(self):
        self.server.shutdown()


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


def cold_starts(functions, env):
    out = {}
    for name in functions:
        events_dir = os.path.join(ROOT, "events", name)
        event_file = sorted(f for f in os.listdir(events_dir) if f.endswith(".json"))[0]
        event = open(os.path.join(events_dir, event_file), "rb").read()
        starts, firsts, rss = [], [], None
        for run in range(COLD_RUNS):
            load = 200 if run == 0 else 0
            api = RuntimeApi(event, 1)
            fenv = dict(env, AWS_LAMBDA_RUNTIME_API=api.address(), AWS_LAMBDA_FUNCTION_NAME=name,
                        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", AWS_LAMBDA_FUNCTION_VERSION="1",
                        AWS_LAMBDA_LOG_GROUP_NAME="bench", AWS_LAMBDA_LOG_STREAM_NAME="bench", RUST_LOG="error")
            t0 = time.perf_counter()
            proc = subprocess.Popen([os.path.join(RELEASE, name)], env=fenv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                api.wait_done(1)
                starts.append((api.first_poll - t0) * 1000)
                firsts.append((api.done["req-0"] - api.handed["req-0"]) * 1000)
                if load:
                    api.release(load)
                    api.wait_done(1 + load, timeout=120)
                    rss = peak_rss_kb(proc.pid)
            finally:
                proc.kill()
                proc.wait()
                api.close()
        out[name] = {"start_ms": statistics.median(starts), "first_invoke_ms": statistics.median(firsts),
                     "peak_rss_kb": rss, "event": event_file}
        log(f"cold start {name}: {out[name]['start_ms']:.1f} ms, first invocation {out[name]['first_invoke_ms']:.1f} ms")
    return out


# --------------------------------------------------------------------------- sizes, criterion

def artifact_sizes(functions):
    """Zipped sizes of the freshest arm64 artifacts: `cargo lambda build` output (what SAM's
    builder produces per function), else `sam build`'s, else this machine's release build."""
    def newest(name):
        logical = "".join(p.capitalize() for p in name.split("-")) + "Function"
        sam_dir = os.path.join(ROOT, ".aws-sam", "build")
        sam = [os.path.join(sam_dir, d, "bootstrap") for d in (os.listdir(sam_dir) if os.path.isdir(sam_dir) else [])
               if d.lower() == logical.lower()]
        arm = [p for p in [os.path.join(ROOT, "target", "lambda", name, "bootstrap")] + sam if os.path.exists(p)]
        if arm:
            return max(arm, key=os.path.getmtime), "arm64 (cargo lambda / sam build)"
        return os.path.join(RELEASE, name), "x86_64 release build of this machine"

    sizes, sources = {}, set()
    for name in functions:
        path, source = newest(name)
        if not os.path.exists(path):
            continue
        sources.add(source)
        with tempfile.TemporaryDirectory() as tmp:
            z = os.path.join(tmp, "f.zip")
            with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as f:
                f.write(path, "bootstrap")
            sizes[name] = {"raw": os.path.getsize(path), "zipped": os.path.getsize(z)}
    return ", ".join(sorted(sources)) or "none built", sizes


def criterion():
    out = subprocess.run(["cargo", "bench", "-q", "-p", "bookshelf-auth", "--bench", "auth", "--",
                          "--output-format", "bencher"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    results = {}
    for m in re.finditer(r"^test (\S+)\s+\.\.\. bench:\s+([\d,]+) ns/iter \(\+/- ([\d,]+)\)", out, re.M):
        results[m.group(1)] = (int(m.group(2).replace(",", "")), int(m.group(3).replace(",", "")))
    return results


# --------------------------------------------------------------------------- report

def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "mem_gib": round(int(mem) / 1024 / 1024, 1),
            "kernel": platform.release(), "os": platform.platform(), "rustc": rustc,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def fmt_ms(v):
    return "–" if v is None else f"{v:.2f}"


def import_export_lines(r):
    """The Imports and Export sections (also spliced in alone by BENCH_ONLY=imports)."""
    lines = []
    if r.get("imports"):
        im = r["imports"]
        lines += [
            "",
            "## Imports",
            "",
            f"A Goodreads export of {im['rows']:,} books the catalog does not have (half with an ISBN-13, half known by",
            "title and author; a third `read` with a day), PUT to the dev server's stand-in for the presigned URL, from",
            "the start of the upload to `completed` (`GET /imports/{id}` polled every 50 ms). Each row is its own",
            "transaction (the book made, the entry and its read, the row's outcome and the counters). Goal: 20 s.",
            "",
            "| rows | median s | rows/s | runs (s) |",
            "|---:|---:|---:|---|",
            f"| {im['rows']:,} | {im['median_s']:.2f} | {im['rows_per_s']:,} | {', '.join(f'{x:.2f}' for x in im['runs'])} |",
        ]
    if r.get("exports"):
        lines += [
            "",
            "## Export",
            "",
            "`GET /library/export` of a reader's whole library, every entry with a finished read and a 5,000-character",
            "review, streamed as it is read (500 entries a page). *RSS growth*: the dev server's resident memory while",
            "serving, sampled every 5 ms, above what it held just before: flat, not growing with the library.",
            "",
            "| entries | format | MB | first byte ms | last byte s | MB/s | RSS growth MB |",
            "|---:|---|---:|---:|---:|---:|---:|",
        ]
        for e in r["exports"].values():
            lines.append(f"| {e['entries']:,} | {e['accept']} | {e['mb']} | {e['first_byte_ms']} | {e['last_byte_s']:.2f} | "
                         f"{e['mb_per_s']} | {e['rss_growth_mb']} |")
    return lines


def splice_sections(path, new_lines, titles, before):
    """Replaces the sections `titles` of BENCHMARKS.md with `new_lines` (or puts them before
    the section `before`), leaving the rest as the last full run wrote it."""
    text = open(path).read() if os.path.exists(path) else ""
    for title in titles:
        text = re.sub(rf"\n## {re.escape(title)}\n.*?(?=\n## |\Z)", "", text, flags=re.S)
    block = "\n".join(new_lines).rstrip("\n") + "\n"
    marker = f"\n## {before}\n"
    if marker in text:
        text = text.replace(marker, block + marker, 1)
    else:
        text = text.rstrip("\n") + "\n" + block
    open(path, "w").write(text)


def report(r):
    m = r["machine"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` on {m['date']}. Medians of {RUNS} runs unless stated; the machine is shared",
        "and noisy, so read ratios rather than absolute figures, and rerun before comparing.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gib']} GiB, Linux {m['kernel']}; {m['rustc']}.",
        "PostgreSQL: a throw-away local cluster with fsync off (durability is not what is measured here).",
        "Everything runs on this one machine: the load generator competes with the server for the 2 cores.",
        "",
    ]
    peer = r.get("peer")
    if not peer:
        lines += ["## Side by side with the Node peer", "",
                  "Not run: the peer's script (`PEER_BENCH`) was not found or failed; `make bench` said why.", ""]
    else:
        ra, med = peer["ratio"], peer["median"]
        lines += [
            "## Side by side with the Node peer",
            "",
            f"`{os.path.basename(peer['script'])}` (the peer's own script, `PEER_BENCH`): our release dev server",
            "and a Node 20 + Fastify + fast-jwt + pg peer, one PostgreSQL, authenticated `GET /books/{id}` over",
            f"10,000 books, wrk `-t2 -c32`, {len(peer['runs']['ours'])} interleaved runs each (peer, ours, peer, ours, ...),",
            "medians. Ours runs the gateway, the authorizer (Ed25519 token, cached per exact token, and the",
            "session row, checked every time) and the handler per request; the peer checks an HS256 token only.",
            "",
            "| ours ÷ peer | throughput | p99 | server CPU per request |",
            "|---|---:|---:|---:|",
            f"| ratio | {ra['rps']:.2f}× | {ra['p99']:.2f}× | {ra['cpu_us']:.2f}× |",
            "",
            "| stack | requests/s | p50 ms | p99 ms | server CPU µs/request | runs (requests/s) |",
            "|---|---:|---:|---:|---:|---|",
        ]
        for who, name in (("ours", "Bookshelf (Rust)"), ("peer", "Node peer")):
            m = med[who]
            runs = ", ".join(f"{x['rps']:.0f}" for x in peer["runs"][who])
            lines.append(f"| {name} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['cpu_us']:.0f} | {runs} |")
        if peer.get("pgbench_tps"):
            lines += ["", f"The same PostgreSQL alone (pgbench, prepared `SELECT` by id, 10 clients): {peer['pgbench_tps']:.0f} transactions/s."]
        lines.append("")
    lines += [
        "## HTTP through the local gateway",
        "",
        f"wrk, 2 threads, 32 connections, {WRK_SECONDS} s per run, authenticated; the dev server built with its own `server` profile (opt-level 3)",
        "(gateway + authorizer + handler per request, as deployed but in one process). Catalog: the 10,000-book seed.",
        "",
        "*server CPU*: the dev server process's CPU time (user + system) during the run, per request.",
        "",
        "| route | requests/s | p50 ms | p99 ms | server CPU µs/request | non-2xx |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, w in r["http"].items():
        lines.append(f"| {name} | {w['rps']:.0f} | {fmt_ms(w['p50'])} | {fmt_ms(w['p99'])} | {w['cpu_us']:.0f} | {w['errors']} |")
    lines += stats_lines(r)
    if r.get("fanout"):
        f = r["fanout"]
        lines += [
            "",
            "## Feed fan-out",
            "",
            f"A reader with {f['followers']:,} followers (`bookshelf-dev seed --followers N`, `BENCH_FOLLOWERS`) shelves a book; the time",
            "from the `PUT /library/{bookId}` answer to the `shelved` activity in the feed of the follower the fan-out",
            "reaches last (polled every 10 ms). The activity goes through the in-process activities queue to the",
            "fan-out, which writes 1,000 feed rows per statement, at most 10 statements a message; each message",
            "hands the rest on to the queue in a message of its own (through the outbox), so no step nears a timeout.",
            "",
            "| median s | runs (s) |",
            "|---:|---|",
            f"| {f['median_s']:.2f} | {', '.join(f'{x:.2f}' for x in f['runs'])} |",
        ]
    lines += import_export_lines(r)
    lines += sync_lines(r)
    lines += size_lines(r)
    lines += [
        "",
        "## Order pipeline",
        "",
        "Orders of one book posted by wrk (2 threads, 32 connections) while the worker confirms them; from",
        "the first order's `created_at` to the last confirmation's `updated_at` (the database's clock). The",
        "worker runs as many pollers per queue as the template's `MaximumConcurrency` (5), batches of 10.",
        "",
        "| queue | orders/s | orders per run | runs (orders/s) |",
        "|---|---:|---:|---|",
    ]
    for name, p in r["pipeline"].items():
        runs = ", ".join(f"{x:.0f}" for x in p["runs"])
        lines.append(f"| {name} | {p['orders_per_s']:.0f} | {p['orders']:.0f} | {runs} |")
    lines += sqs_cost_lines(r)
    lines += [
        "",
        "## Cold start of every function",
        "",
        f"Release binaries for this machine, started against a minimal Lambda Runtime API on 127.0.0.1; median of {COLD_RUNS}.",
        "*start*: process start to its first poll of `/runtime/invocation/next` (configuration, secrets from the",
        "environment, the lazy pool: no database round trip yet). *first invocation*: event handed out to response",
        "posted, with the function's first sample event (it includes the first database connection). *peak RSS*:",
        "after 200 more invocations.",
        "",
        "| function | start ms | first invocation ms | peak RSS MiB |",
        "|---|---:|---:|---:|",
    ]
    for name, c in sorted(r["cold"].items()):
        rss = "–" if c["peak_rss_kb"] is None else f"{c['peak_rss_kb'] / 1024:.1f}"
        lines.append(f"| {name} | {c['start_ms']:.1f} | {c['first_invoke_ms']:.1f} | {rss} |")
    source, sizes = r["sizes"]
    lines += [
        "",
        "## Artifact sizes",
        "",
        f"Source: {source}. Zipped with deflate level 9, as Lambda receives it; the budget is 3 MB each.",
        "",
        "| function | bootstrap bytes | zipped bytes |",
        "|---|---:|---:|",
    ]
    for name, s in sorted(sizes.items()):
        lines.append(f"| {name} | {s['raw']:,} | {s['zipped']:,} |")
    lines += [
        "",
        "## Micro-benchmarks (criterion)",
        "",
        "`cargo bench -p bookshelf-auth --bench auth`. argon2id parameters: m = 19,456 KiB, t = 2, p = 1",
        "(OWASP's minimum recommendation), chosen so a login costs tens of milliseconds of one core.",
        "",
        "| benchmark | time per iteration | ± |",
        "|---|---:|---:|",
    ]
    for name, (ns, dev) in r["criterion"].items():
        value = f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.1f} µs"
        lines.append(f"| {name} | {value} | {dev / 1e3:.1f} µs |")
    lines += [
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench                      # everything above; writes BENCHMARKS.md",
        "BENCH_RUNS=5 BENCH_WRK_SECONDS=30 make bench   # longer runs",
        "make deploy-check               # first, for arm64 artifact sizes from sam build",
        "```",
        "",
        "The exact commands: `scripts/bench.py` (wrk invocations, the Runtime API stand-in, the order client).",
    ]
    if r.get("notes"):
        lines += ["", "## Findings", ""] + r["notes"]
    return "\n".join(lines) + "\n"


def main():
    if "DATABASE_URL" not in os.environ:
        raise SystemExit("run through `make bench` (it provides DATABASE_URL)")
    results = {"machine": machine(), "http": {}, "pipeline": {}}
    tmp = tempfile.mkdtemp(prefix="bookshelf-bench-")
    keys_file = os.path.join(tmp, "signing.json")
    functions = sorted(os.listdir(os.path.join(ROOT, "functions")))

    server = Server(keys_file)
    try:
        log("seeding 10,000 books")
        subprocess.run([DEV, "seed", "10000"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        admin = login(server.url, "admin@bookshelf.local", "bookshelf-admin")
        user = register(server.url, "bench@example.org")
        status, book = call("POST", server.url + "/books", {"title": "Benchmark Edition", "authors": ["Bench"],
                                                             "priceCents": 100, "stock": 2_000_000_000}, admin)
        assert status == 201, book
        book_id = book["id"]
        order_lua = os.path.join(tmp, "order.lua")
        with open(order_lua, "w") as f:
            f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                    f'wrk.body = \'{{"items":[{{"bookId":"{book_id}","quantity":1}}]}}\'\n')
        if os.environ.get("BENCH_ONLY") == "fanout":
            print(json.dumps(fanout(server.url, admin), indent=1))
            return
        if os.environ.get("BENCH_ONLY") == "peer":
            server.stop()
            print(json.dumps(side_by_side(), indent=1))
            return
        if os.environ.get("BENCH_ONLY") == "imports":
            found = {"imports": imports(server.url), "exports": exports(server)}
            print(json.dumps(found, indent=1))
            splice_sections(os.path.join(ROOT, "BENCHMARKS.md"), import_export_lines(found), ["Imports", "Export"],
                            "Order pipeline")
            return
        if os.environ.get("BENCH_ONLY") == "sqs":
            server.stop()
            found = {"sqs_cost": sqs_cost(keys_file, book_id)}
            print(json.dumps(found, indent=1, default=str))
            splice_sections(os.path.join(ROOT, "BENCHMARKS.md"), sqs_cost_lines(found), ["SQS pipeline cost"],
                            "Cold start of every function")
            return
        if os.environ.get("BENCH_ONLY") == "stats":
            found = {"stats": stats_bench(server)}
            print(json.dumps(found, indent=1, default=str))
            splice_sections(os.path.join(ROOT, "BENCHMARKS.md"), stats_lines(found), ["Reading stats"], "Feed fan-out")
            return
        if os.environ.get("BENCH_ONLY") == "sync":
            found = {"sync": {"changes": changes_feed(server), "webhooks": webhooks(server, admin)}}
            print(json.dumps(found, indent=1, default=str))
            splice_sections(os.path.join(ROOT, "BENCHMARKS.md"), sync_lines(found), ["Sync"], "Order pipeline")
            return
        if os.environ.get("BENCH_ONLY") == "size":
            found = {"size": {"catalog": catalog_at_scale(server, admin), "feed": feed_and_library_at_size(server)}}
            print(json.dumps(found, indent=1, default=str))
            splice_sections(os.path.join(ROOT, "BENCHMARKS.md"), size_lines(found),
                            ["Catalog search at size", "Feed and library at size"], "Order pipeline")
            return
        if os.environ.get("BENCH_ONLY") == "pooling":
            server.stop()
            result = pooling_cost(keys_file, user, book_id)
            print(json.dumps(result, indent=1))
            return
        log("wrk: GET /books/{id}")
        results["http"]["GET /books/{id}"] = wrk(server, user, f"/books/{book_id}")
        log(f"imports of {IMPORT_ROWS:,} Goodreads rows")
        results["imports"] = imports(server.url)
        log("exports")
        results["exports"] = exports(server)
        log("sync: the change feed and webhooks")
        results["sync"] = {"changes": changes_feed(server), "webhooks": webhooks(server, admin)}
        log("GET /users/me/stats, sequential and under wrk")
        results["stats"] = stats_bench(server)
        results["http"]["GET /users/me/stats (5,000 reads, 20,000 sessions)"] = results["stats"]["wrk"]
        log(f"feed fan-out to {FOLLOWERS:,} followers")
        results["fanout"] = fanout(server.url, admin)
        log("wrk: GET /books?q=")
        results["http"]["GET /books?q=lighthouse (search)"] = wrk(server, user, "/books?q=lighthouse&limit=20")
        # The pipeline first: the wrk run below queues tens of thousands of orders, and a
        # pipeline measured after it would time the worker draining that backlog.
        log("order pipeline, in-process queue")
        results["pipeline"]["in-process queue"] = order_pipeline(server.url, user, book_id, ORDERS)
        log("wrk: POST /orders")
        results["http"]["POST /orders"] = wrk(server, user, "/orders", order_lua)
        # Last: it grows the catalog to a million books, which the figures above predate.
        log("the catalog, the feed and the library at size")
        results["size"] = {"catalog": catalog_at_scale(server, admin), "feed": feed_and_library_at_size(server)}
    finally:
        server.stop()

    results["sqs_cost"] = sqs_cost(keys_file, book_id)

    log("side by side with the Node peer")
    results["peer"] = side_by_side()

    signing = open(keys_file).read()
    env = dict(os.environ, BOOKSHELF_SIGNING_KEYS=signing)
    log("cold starts")
    results["cold"] = cold_starts(functions, env)
    results["sizes"] = artifact_sizes(functions)
    log("criterion")
    results["criterion"] = criterion()
    notes_file = os.path.join(ROOT, "scripts", "bench-notes.md")
    if os.path.exists(notes_file):
        results["notes"] = open(notes_file).read().rstrip().splitlines()
    path = os.path.join(ROOT, "BENCHMARKS.md")
    old = open(path).read() if os.path.exists(path) else ""
    # make scale writes its own section; it is kept, not measured again here.
    scale = re.search(r"\n## Scale \(make scale\)\n.*?(?=\n## |\Z)", old, flags=re.S)
    with open(path, "w") as f:
        f.write(report(results).rstrip("\n") + "\n" + (scale.group(0) if scale else ""))
    with open(os.path.join(tmp, "results.json"), "w") as f:
        json.dump(results, f, indent=2, default=str)
    log(f"wrote BENCHMARKS.md (raw results: {tmp}/results.json)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
