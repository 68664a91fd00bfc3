"""Editor latency: from ``textDocument/didChange`` to the ``publishDiagnostics`` of that version.

    python bench/lsp_latency.py [--lines 1000] [--changes 20] [--pause 1.0] [--edit comment|helper]

Starts ``python -m looplint server``, opens a training script of about ``--lines`` rows with a finding
(``bench/synthetic.py``, a loop without ``zero_grad``), then sends ``--changes`` whole-document changes,
``--pause`` seconds apart (an editor that is idle when the change comes: the case a user feels), each
editing a comment so that the finding stays, and measures the time until the diagnostics of that version
arrive. Prints the command, every latency and their median. ``--edit comment`` (default) appends a comment
at module level (the code that can matter changes: every change is linted); ``--edit helper`` edits a
comment on the first row of the first definition that cannot matter (``looplint.relevance``: the server's
worker reuses its last result).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from typing import Optional, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))


def training_file(lines: int) -> str:
    sys.path.insert(0, HERE)
    from synthetic import _utility_function, training_script

    rng = random.Random(0)
    text = training_script(rng, 0, "no-zero-grad")
    extra, i = [], 100
    while (text.count("\n") + sum(p.count("\n") for p in extra)) < lines:
        extra.append(_utility_function(rng, i))
        i += 1
    head, _, rest = text.partition("def train(")
    return head + "".join(extra) + "def train(" + rest


class Client:
    def __init__(self, command) -> None:
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.next_id = 0

    def send(self, method: str, params: dict, request: bool = False) -> Optional[int]:
        body = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            body["id"] = self.next_id
        data = json.dumps(body).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        self.process.stdin.flush()
        return body.get("id")

    def receive(self) -> dict:
        length = 0
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise EOFError("the server ended")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return json.loads(self.process.stdout.read(length))

    def wait_for(self, test) -> dict:
        while True:
            message = self.receive()
            if message.get("method") in ("client/registerCapability", "workspace/configuration") and "id" in message:
                self.reply(message["id"], None)
            if test(message):
                return message

    def reply(self, msg_id, result) -> None:
        data = json.dumps({"jsonrpc": "2.0", "id": msg_id, "result": result}).encode()
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
        self.process.stdin.flush()


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--pause", type=float, default=1.0, help="seconds between changes (default 1.0)")
    parser.add_argument("--edit", choices=("comment", "helper"), default="comment",
                        help="what each change edits (default: a comment appended at module level)")
    ns = parser.parse_args(argv)
    print("$ python bench/lsp_latency.py " + " ".join(sys.argv[1:] if argv is None else argv), flush=True)
    text = training_file(ns.lines)
    uri = "file:///tmp/looplint-latency/train.py"
    client = Client([sys.executable, "-m", "looplint", "server"])
    try:
        init = client.send("initialize", {"processId": os.getpid(), "rootUri": None, "capabilities": {}}, request=True)
        client.wait_for(lambda m: m.get("id") == init)
        client.send("initialized", {})
        client.send("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})
        first = client.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics")
        codes = [d.get("code") for d in first["params"]["diagnostics"]]
        print(f"document: {text.count(chr(10))} lines, findings {codes}", flush=True)
        latencies = []
        if ns.edit == "helper":
            import ast

            from looplint.relevance import relevance

            cold_row = relevance(ast.parse(text), text).cold[0][0]
            print(f"each change edits row {cold_row}: {text.split(chr(10))[cold_row - 1]}", flush=True)
        for version in range(2, ns.changes + 2):
            time.sleep(ns.pause)
            if ns.edit == "comment":
                changed = text + f"# edit {version}\n"
            else:  # a comment on the first row of the first definition that cannot matter, no row added
                rows = text.split("\n")
                rows[cold_row - 1] += f"  # edit {version}"
                changed = "\n".join(rows)
            started = time.perf_counter()
            client.send("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                   "contentChanges": [{"text": changed}]})
            message = client.wait_for(lambda m: m.get("method") == "textDocument/publishDiagnostics"
                                      and m["params"].get("version") == version)
            latencies.append(time.perf_counter() - started)
            assert message["params"]["diagnostics"], "the finding disappeared"
        print("latencies ms: " + " ".join(f"{x * 1000:.0f}" for x in latencies))
        print(f"median {statistics.median(latencies) * 1000:.0f} ms over {len(latencies)} changes")
        shutdown = client.send("shutdown", None, request=True)
        client.wait_for(lambda m: m.get("id") == shutdown)
        client.send("exit", None)
        client.process.wait(30)
    finally:
        if client.process.poll() is None:
            client.process.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
