"""Snapshots on S3 (snapshots.url=s3://BUCKET/PREFIX) against real peers over loopback.

The S3 server is s3rver (pinned in tests/s3/package.json, installed by
scripts/install-npm-deps.sh), started per test on a free port with its own directory. s3rver
checks the access key id (S3RVER) and wants x-amz-content-sha256, but does not verify the
signature, so a small recording proxy sits between metasync and s3rver: it captures every request
(method, raw path and query, headers, body) and the test recomputes each SigV4 signature with
botocore's signer (an independent implementation) from the captured request, the same credentials
and the request's own x-amz-date, and compares it with the Authorization header. It also checks
the payload hash, the SigV4 encoding of the key (a prefix with a space, unicode, '+', '=' and '~')
and that no header is sent empty. With verify=True the proxy answers a bad signature itself with
S3's 403 SignatureDoesNotMatch. Objects are read back with boto3.

Covered: snapshots land in the bucket and match the change log; a 503 on a PUT is retried
inside put(); a 403 is not, is logged as such, and the sink stores the object once S3 accepts it;
s3rver stopped mid-stream and restarted on the same port and directory → snapshots resume and
are complete; a missing bucket, rejected credentials and a broken or incomplete credentials file
stop the start with a clear error; an unreachable endpoint does not; the session token is sent
(and signed) when set.
"""
import hashlib
import http.client
import http.server
import re
import subprocess
import threading
import urllib.parse
from pathlib import Path

import pytest
import requests

from conftest import REPO, T, free_port, read_snapshots, run_cli, wait_until

boto3 = pytest.importorskip("boto3")
from botocore.auth import S3SigV4Auth  # noqa: E402  (after the importorskip)
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

S3RVER = REPO / "tests" / "s3" / "node_modules" / ".bin" / "s3rver"
BUCKET = "snap"
PREFIX = "metasync snaps/ü+=~"  # a space, unicode, '+', '=' and '~'
KEY_ID = SECRET = "S3RVER"  # the credentials s3rver accepts
REGION = "us-east-1"

if not S3RVER.exists():
    pytest.skip(f"s3rver is not installed ({S3RVER}): run scripts/install-npm-deps.sh",
                allow_module_level=True)


class S3rver:
    """One s3rver process with its own directory; restartable on the same port and data."""

    LISTEN_RE = re.compile(r"S3rver listening on 127\.0\.0\.1:(\d+)")

    def __init__(self, tmp_path):
        self.dir = tmp_path / "s3rver-data"
        self.dir.mkdir()
        self.log_path = tmp_path / "s3rver.log"
        self.port = 0
        self.proc = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._log = open(self.log_path, "ab")
        offset = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [str(S3RVER), "-d", str(self.dir), "-a", "127.0.0.1", "-p", str(self.port),
             "--no-vhost-buckets", "--configure-bucket", BUCKET],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)

        def bound():
            m = self.LISTEN_RE.search(self.log_path.read_bytes()[offset:].decode(errors="replace"))
            if m:
                return int(m.group(1))
            assert self.proc.poll() is None, f"s3rver exited:\n{self.log_path.read_text()}"
            return None

        self.port = wait_until(bound, 30, message="s3rver to listen")

        def answers():
            try:
                return requests.get(self.url, timeout=T(2)).status_code > 0
            except requests.ConnectionError:
                return False

        wait_until(answers, 30, message="s3rver to answer")
        return self

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=T(10))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()
        self.proc = None

    def client(self):
        return boto3.client("s3", endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                            config=Config(s3={"addressing_style": "path"}))


class Recorded:
    def __init__(self, method, raw_path, headers, body):
        self.method, self.raw_path, self.headers, self.body = method, raw_path, headers, body

    def header(self, name):
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(values) <= 1, f"header {name} sent {len(values)} times"
        return values[0] if values else None


class RecordingProxy:
    """An HTTP/1.1 proxy on loopback that records each request and forwards it verbatim (Host
    included, so the signature still holds) to upstream. fail_puts is a list of (status, S3 error
    code, message) answers given, in order, to the next PUTs instead of forwarding them; verify
    answers a request whose signature
    check_signature rejects with 403 SignatureDoesNotMatch, as S3 does."""

    def __init__(self, upstream_port, verify=False):
        self.records = []
        self.verify = verify
        self.fail_puts = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_one(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                rec = Recorded(self.command, self.path, list(self.headers.items()), body)
                with proxy.lock:
                    proxy.records.append(rec)
                    fail = proxy.fail_puts.pop(0) if self.command == "PUT" and \
                        proxy.fail_puts else None
                if proxy.verify:
                    try:
                        check_signature(rec)
                    except AssertionError:
                        self.answer(403, [("Content-Type", "application/xml")],
                                    b"<Error><Code>SignatureDoesNotMatch</Code><Message>The "
                                    b"request signature we calculated does not match the "
                                    b"signature you provided.</Message></Error>")
                        return
                if fail:
                    status, code, message = fail
                    self.answer(status, [("Content-Type", "application/xml")],
                                f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>"
                                f"{message}</Message></Error>".encode())
                    return
                conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=T(30))
                try:
                    conn.putrequest(self.command, self.path, skip_host=True,
                                    skip_accept_encoding=True)
                    for k, v in self.headers.items():
                        if k.lower() not in ("expect", "connection", "keep-alive"):
                            conn.putheader(k, v)
                    conn.endheaders(body)
                    resp = conn.getresponse()
                    data = resp.read()
                    headers = [(k, v) for k, v in resp.getheaders()
                               if k.lower() not in ("connection", "transfer-encoding",
                                                    "content-length", "keep-alive")]
                    self.answer(resp.status, headers, data)
                finally:
                    conn.close()

            def answer(self, status, headers, data):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = handle_one

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def s3rver(tmp_path):
    s = S3rver(tmp_path).start()
    yield s
    s.stop()


@pytest.fixture
def aws_env(monkeypatch):
    """The S3RVER credentials in the environment, nothing else of AWS_* inherited."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_SHARED_CREDENTIALS_FILE",
                 "AWS_CONFIG_FILE", "AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    return monkeypatch


def s3_args(endpoint, prefix=PREFIX, bucket=BUCKET, *more):
    return ("--snapshots.url", f"s3://{bucket}/{prefix}", "--s3.endpoint", endpoint,
            "--s3.path-style", "--snapshots.max-object-age-ms", "200", *more)


def download(s3, dest, prefix=PREFIX):
    """Copies every object under PREFIX/ to dest/snapshots/<key without PREFIX/> so that
    conftest.read_snapshots checks it like the directory store; returns the keys."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for obj in page.get("Contents", []):
            key = obj["Key"]
            keys.append(key)
            out = Path(dest) / "snapshots" / key[len(prefix) + 1:]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return keys


def bucket_records(s3, tmp_path):
    dest = tmp_path / f"download-{len(list(tmp_path.glob('download-*')))}"
    download(s3, dest)
    return read_snapshots(dest)


def covered(s3, tmp_path, last):
    records, _ = bucket_records(s3, tmp_path)
    return set(records) >= set(range(1, last + 1))


def traffic(server, tag, rounds=3):
    """A few batches of mixed ops; returns the last seq."""
    server.ingest_ok([{"op": "upsert", "type": "connection", "qualified_name": f"{tag}"},
                      {"op": "upsert", "type": "database", "qualified_name": f"{tag}/db"},
                      {"op": "upsert", "type": "schema", "qualified_name": f"{tag}/db/s"}])
    for r in range(rounds):
        t = f"{tag}/db/s/t{r}"
        server.ingest_ok([{"op": "upsert", "type": "table", "qualified_name": t,
                           "attributes": {"description": f"table {r} ünïcode"}}] +
                         [{"op": "upsert", "type": "column", "qualified_name": f"{t}/c{i}",
                           "attributes": {"data_type": "int"}} for i in range(4)] +
                         [{"op": "tag", "qualified_name": t, "tag": "PII"}])
    return server.last_seq()


def assert_bucket_matches_feed(s3, server, tmp_path):
    records, nobjects = bucket_records(s3, tmp_path)
    last = server.last_seq()
    assert sorted(records) == list(range(1, last + 1)), "a change is missing or extra"
    assert records == {c["seq"]: c for c in server.all_changes()}
    return nobjects


# ---- SigV4, checked by botocore -------------------------------------------------------------

AUTH_RE = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/s3/aws4_request, ?"
                     r"SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$")


def sigv4_quote(s):
    return urllib.parse.quote(s, safe="-_.~")


def check_signature(rec, token=None):
    """Recomputes rec's signature with botocore and compares it with its Authorization."""
    for k, v in rec.headers:
        assert v.strip(), f"{rec.method} {rec.raw_path}: header {k} sent empty"
    m = AUTH_RE.match(rec.header("Authorization") or "")
    assert m, f"bad Authorization: {rec.header('Authorization')}"
    key_id, day, region, signed, signature = m.groups()
    assert (key_id, region) == (KEY_ID, REGION)
    amz_date = rec.header("x-amz-date")
    assert amz_date and amz_date[:8] == day
    names = signed.split(";")
    assert names == sorted(names)
    for must in ("host", "x-amz-date", "x-amz-content-sha256"):
        assert must in names, f"{must} not signed: {signed}"
    if token is not None:
        assert rec.header("x-amz-security-token") == token
        assert "x-amz-security-token" in names
    else:
        assert rec.header("x-amz-security-token") is None
    # The payload hash is the body's.
    assert rec.header("x-amz-content-sha256") == hashlib.sha256(rec.body).hexdigest()
    # The path is the SigV4 encoding of its decoded form ('/' kept); the query is canonical.
    path, _, query = rec.raw_path.partition("?")
    assert path == urllib.parse.quote(urllib.parse.unquote(path), safe="/-_.~"), path
    params = [tuple(urllib.parse.unquote(x) for x in (p.split("=", 1) + [""])[:2])
              for p in query.split("&") if p]
    assert query == "&".join(sorted(f"{sigv4_quote(k)}={sigv4_quote(v)}" for k, v in params))
    # botocore signs the request rebuilt from decoded parts, with the same date.
    req = AWSRequest(method=rec.method, url=f"http://{rec.header('Host')}{path}",
                     headers={n: rec.header(n) for n in names}, data=rec.body,
                     params=dict(params))
    req.context["timestamp"] = amz_date
    signer = S3SigV4Auth(Credentials(KEY_ID, SECRET, token), "s3", REGION)
    canonical = signer.canonical_request(req)
    expected = signer.signature(signer.string_to_sign(req, canonical), req)
    assert signature == expected, f"signature mismatch; botocore's canonical request:\n{canonical}"


def test_snapshots_land_in_s3_signed_correctly(make_server, s3rver, aws_env, tmp_path):
    proxy = RecordingProxy(s3rver.port)
    try:
        # The first PUT gets a 503 SlowDown: put() retries it.
        proxy.fail_puts = [(503, "SlowDown", "Please reduce your request rate.")]
        server = make_server(*s3_args(proxy.url), "--snapshots.max-object-bytes", "4k")
        assert "s3: bucket snap reachable" in server.stderr()
        last = traffic(server, "pg")
        s3 = s3rver.client()
        wait_until(lambda: covered(s3, tmp_path, last), 30,
                   message=f"objects in the bucket covering seq 1..{last}")
        server.stop()  # flushes; then the bucket holds exactly the change log
        server.start()
        nobjects = assert_bucket_matches_feed(s3, server, tmp_path)
        assert nobjects >= 3, "4 KiB objects: expected several"
        records = proxy.snapshot()
    finally:
        proxy.close()
    stderr = "\n".join(server.logs)
    assert re.search(r"s3: PUT \S+ HTTP 503 SlowDown: Please reduce your request rate\.; retry 1",
                     stderr), stderr[-3000:]
    assert SECRET not in stderr.replace("AWS_SECRET_ACCESS_KEY", "")
    puts = [r for r in records if r.method == "PUT"]
    gets = [r for r in records if r.method == "GET"]
    assert len(gets) == 2 and len(puts) >= nobjects + 1
    assert {r.method for r in records} == {"GET", "PUT"}
    for r in records:
        check_signature(r)
    # Keys: PREFIX/default/yyyy/mm/dd/hh/F-L.ndjson, SigV4-encoded in the path.
    for r in puts:
        key = urllib.parse.unquote(r.raw_path)
        assert re.fullmatch(rf"/{BUCKET}/{re.escape(PREFIX)}/default/\d{{4}}/\d\d/\d\d/\d\d/"
                            r"\d+-\d+\.ndjson", key), key
        assert "%20" in r.raw_path and "%C3%BC%2B%3D~" in r.raw_path
        assert r.header("Content-Type") == "application/x-ndjson"
    # The start check lists under the prefix, with an encoded, sorted query.
    assert gets[0].raw_path == (f"/{BUCKET}/?list-type=2&max-keys=1&prefix="
                                f"{sigv4_quote(PREFIX + '/')}")


def test_session_token_is_sent_and_signed(make_server, s3rver, aws_env, tmp_path):
    token = "FwoGZXIvYXdzE/session+token=="
    aws_env.setenv("AWS_SESSION_TOKEN", token)
    proxy = RecordingProxy(s3rver.port)
    try:
        server = make_server(*s3_args(proxy.url))
        last = traffic(server, "tok", rounds=1)
        s3 = s3rver.client()
        wait_until(lambda: covered(s3, tmp_path, last), 30, message="objects in the bucket")
        records = proxy.snapshot()
    finally:
        proxy.close()
    assert {r.method for r in records} == {"GET", "PUT"}
    for r in records:
        check_signature(r, token=token)
    assert token not in server.stderr()
    assert "credentials from the environment (AWS_ACCESS_KEY_ID, AWS_SESSION_TOKEN)" in \
        server.stderr()


def test_refused_put_is_logged_and_retried_by_the_sink(make_server, s3rver, aws_env, tmp_path):
    """A 403 is not retried inside put(), but it is still MS_ERR_IO to the sink: the object is
    kept and stored once S3 accepts it."""
    proxy = RecordingProxy(s3rver.port)
    try:
        server = make_server(*s3_args(proxy.url))
        proxy.fail_puts = [(403, "AccessDenied", "Access Denied")] * 2
        last = traffic(server, "denied", rounds=1)
        s3 = s3rver.client()
        wait_until(lambda: covered(s3, tmp_path, last), 30, message="objects after the 403s")
        assert_bucket_matches_feed(s3, server, tmp_path)
        stderr = server.stderr()
    finally:
        proxy.close()
    refused = re.findall(r"error s3: PUT s3://snap/.+ refused \(HTTP 403 AccessDenied: Access "
                         r"Denied\); not a transient failure, but reported as a retriable", stderr)
    assert len(refused) == 2, stderr[-3000:]
    assert "snapshots: cannot store" in stderr
    assert "retry 1 of" not in stderr  # no in-put retries of a 403


# ---- outage ---------------------------------------------------------------------------------

def test_s3_outage_delays_snapshots_and_loses_nothing(make_server, s3rver, aws_env, tmp_path):
    server = make_server(*s3_args(s3rver.url), "--s3.max-retries", "1", "--s3.timeout-ms", "3000",
                         "--snapshots.max-object-bytes", "2k")
    s3 = s3rver.client()
    last = traffic(server, "before")
    wait_until(lambda: covered(s3, tmp_path, last), 30, message="the first objects")

    s3rver.stop()
    # Ingest goes on while S3 is down: the change log is the buffer.
    last = traffic(server, "during", rounds=4)
    wait_until(lambda: "snapshots: cannot store" in server.stderr(), 30,
               message="the sink to see the outage")
    server.assert_healthy()
    last = server.last_seq()

    s3rver.start()  # same port, same directory
    wait_until(lambda: covered(s3, tmp_path, last), 60, message="snapshots to resume after S3")
    last = traffic(server, "after", rounds=1)
    wait_until(lambda: covered(s3, tmp_path, last), 30, message="the changes made after")
    server.stop()
    server.start()
    assert_bucket_matches_feed(s3, server, tmp_path)  # none missing, none corrupted


# ---- start errors ---------------------------------------------------------------------------

def serve_once(tmp_path, *args):
    """Runs `metasync serve` expecting it to fail at start; returns (exit code, stderr)."""
    r = run_cli("serve", "--listen", "127.0.0.1:0", "--data-dir", tmp_path / "data-fail", *args,
                timeout=60)
    return r.returncode, r.stderr


def test_missing_bucket_is_a_start_error(s3rver, aws_env, tmp_path):
    code, err = serve_once(tmp_path, *s3_args(s3rver.url, bucket="no-such-bucket"))
    assert code == 2, err
    assert "invalid_config" in err and "no-such-bucket" in err and "NoSuchBucket" in err, err


def test_rejected_credentials_are_a_start_error(s3rver, aws_env, tmp_path):
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN")
    code, err = serve_once(tmp_path, *s3_args(s3rver.url))
    assert code == 2, err
    assert "InvalidAccessKeyId" in err and SECRET not in err, err

    aws_env.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    proxy = RecordingProxy(s3rver.port, verify=True)
    try:
        code, err = serve_once(tmp_path, *s3_args(proxy.url))
    finally:
        proxy.close()
    assert code == 2, err
    assert "HTTP 403 SignatureDoesNotMatch" in err and "wrong-secret" not in err, err


def test_credentials_file(make_server, s3rver, aws_env, tmp_path):
    s3 = s3rver.client()  # before AWS_PROFILE is set: boto3 reads it too
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    creds = tmp_path / "credentials"
    aws_env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))

    # No such file.
    code, err = serve_once(tmp_path, *s3_args(s3rver.url))
    assert code == 2 and "no S3 credentials" in err and str(creds) in err, err

    # Unknown key id in the file.
    creds.write_text("[default]\naws_access_key_id = AKIDUNKNOWN\n"
                     "aws_secret_access_key = secret-never-logged\n")
    code, err = serve_once(tmp_path, *s3_args(s3rver.url))
    assert code == 2 and "InvalidAccessKeyId" in err and "secret-never-logged" not in err, err

    # A profile that is not there, and a malformed line.
    aws_env.setenv("AWS_PROFILE", "ci")
    code, err = serve_once(tmp_path, *s3_args(s3rver.url))
    assert code == 2 and f"{creds} has no profile [ci]" in err, err
    creds.write_text("[ci]\naws_access_key_id = S3RVER\nnot a key value line\n")
    code, err = serve_once(tmp_path, *s3_args(s3rver.url))
    assert code == 2 and "line 3" in err, err

    # The right profile works.
    creds.write_text("[default]\naws_access_key_id = nope\naws_secret_access_key = nope\n"
                     f"[ci]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n")
    server = make_server(*s3_args(s3rver.url))
    assert f"s3: credentials from {creds}, profile [ci]" in server.stderr()
    last = traffic(server, "file", rounds=1)
    wait_until(lambda: covered(s3, tmp_path, last), 30, message="objects")


def test_unreachable_endpoint_does_not_prevent_start(make_server, aws_env, tmp_path):
    port = free_port()  # nothing listens there
    server = make_server(*s3_args(f"http://127.0.0.1:{port}"), "--s3.max-retries", "0")
    assert "s3: cannot check bucket snap" in server.stderr()
    server.assert_healthy()
    wait_until(lambda: "snapshots: cannot store" in server.stderr(), 30,
               message="the sink to retry the unreachable endpoint")
