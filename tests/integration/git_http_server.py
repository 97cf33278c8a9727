#!/usr/bin/env python3
"""A git smart-HTTP server for tests: `git http-backend` behind Basic auth.

    git_http_server.py ROOT PORT USER TOKEN_FILE LOG

Serves the repositories under ROOT on 127.0.0.1:PORT. Every request must
carry `Authorization: Basic` for USER and the token in TOKEN_FILE; others
get 401 with a challenge, so a client sends its credentials only when asked.
Writes one line per request to LOG: method, path, status and whether
credentials came with it (never the credentials).
"""
import base64
import http.server
import os
import subprocess
import sys

ROOT, PORT, USER, TOKEN_FILE, LOG = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
with open(TOKEN_FILE) as f:
    TOKEN = f.readline().strip()
EXPECTED = "Basic " + base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # the log below is ours
        pass

    def note(self, status):
        with open(LOG, "a") as log:
            log.write(f"{self.command} {self.path} {status} auth={'yes' if self.headers.get('Authorization') else 'no'}\n")

    def deny(self):
        self.note(401)
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def serve(self):
        if self.headers.get("Authorization") != EXPECTED:
            self.deny()
            return
        path, _, query = self.path.partition("?")
        body = b""
        if self.headers.get("Content-Length"):
            body = self.rfile.read(int(self.headers["Content-Length"]))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": ROOT,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": USER,
            "REMOTE_ADDR": self.client_address[0],
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": ROOT,
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = out.partition(b"\n\n")
        status = 200
        headers = []
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.note(status)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = serve
    do_POST = serve


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
