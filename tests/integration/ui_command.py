#!/usr/bin/env python3
"""Sends one command to an agent the way the dashboard does, and waits for its result.

    ui_command.py --url http://127.0.0.1:PORT --user U --password-file F \\
                  --host HOST --action ACTION [--container NAME] [--device ID] [--timeout 120]

Logs in (POST /api/login), opens the /ui feed with the session cookie, waits for
the snapshot, sends {"type": "command", ...}, and prints the command_result's
message. Exit 0 when the result is ok, 1 when it is not or does not come.
Standard library only; the websocket client is hostile_client.py's.
"""
import argparse
import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hostile_client import WebSocket  # noqa: E402


def login(url, user, password):
    req = urllib.request.Request(url + "/api/login", method="POST",
                                 data=json.dumps({"user": user, "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        for value in r.headers.get_all("Set-Cookie") or []:
            if value.startswith("fh_session="):
                return value.split(";", 1)[0]
    raise SystemExit("login: no session cookie")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--action", required=True)
    ap.add_argument("--container")
    ap.add_argument("--device")
    ap.add_argument("--timeout", type=float, default=120)
    a = ap.parse_args()
    with open(a.password_file) as f:
        password = f.read().strip()
    cookie = login(a.url, a.user, password)
    ws_url = a.url.replace("http://", "ws://").replace("https://", "wss://")
    ws = WebSocket(ws_url, "/ui", "farmhand.ui.v1", timeout=a.timeout, headers=[f"Cookie: {cookie}"])
    command = {"type": "command", "host": a.host, "action": a.action}
    if a.container:
        command["container"] = a.container
    if a.device:
        command["device"] = a.device
    deadline = time.monotonic() + a.timeout
    sent_id = None
    ws.send_json(command)
    while time.monotonic() < deadline:
        msg = ws.recv_or_eof()
        kind, payload = msg[0], (msg[1] if len(msg) > 1 else None)
        if kind != "text":
            print(f"feed ended: {kind} {payload!r}")
            return 1
        frame = json.loads(payload)
        t = frame.get("type")
        if t == "error":
            print(f"refused: {frame.get('code')}: {frame.get('message')}")
            return 1
        if t == "command_sent":
            sent_id = frame.get("id")
        elif t == "command_result" and sent_id is not None and frame.get("id") == sent_id:
            print(frame.get("message", ""))
            return 0 if frame.get("ok") else 1
    print("no command_result before the timeout")
    return 1


if __name__ == "__main__":
    sys.exit(main())
