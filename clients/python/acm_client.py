#!/usr/bin/python3
"""acm_client.py — a stdlib-only Open Inference Protocol (KServe v2) client for acmd, as an ecosystem user would
write one: http.client and json, nothing to install. Runs with Debian's /usr/bin/python3.

    acm_client.py [--server URL] health
    acm_client.py [--server URL] metadata [MODEL]
    acm_client.py [--server URL] infer [--model M] [--budget B] [--count N] [--batch B] [--data DIR]
    acm_client.py [--server URL] classify [--model M] [--budget B] FILE...

`infer` sends Fashion-MNIST test images (IDX files read with gzip + struct) as OIP UINT8 tensors [B, 28, 28, 1] to
POST /v2/models/{m}/infer and reports the accuracy against the labels; `classify` posts image files as they are to
POST /v1/models/{m}/classify. Errors: the server's {"error": ...} message on stderr and exit status 1; a server that
cannot be reached, exit status 2.
"""
import argparse
import gzip
import http.client
import json
import os
import struct
import sys
import urllib.parse


class ServerError(Exception):
    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


class Client:
    """One keep-alive HTTP/1.1 connection to an OIP v2 server."""

    def __init__(self, url="http://127.0.0.1:8080", timeout=30.0, api_key=None):
        """api_key: sent as Authorization: Bearer KEY (default $ACM_API_KEY; none without it)."""
        u = urllib.parse.urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError(f"--server: {url!r} is not an http(s) URL")
        cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
        self.conn = cls(u.hostname, u.port, timeout=timeout)
        self.base = u.path.rstrip("/")
        key = api_key if api_key is not None else os.environ.get("ACM_API_KEY", "")
        self.auth = {"Authorization": f"Bearer {key}"} if key else {}

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers, decoded JSON body); raises ServerError for a status >= 400."""
        self.conn.request(method, self.base + path, body=body, headers={**self.auth, **(headers or {})})
        r = self.conn.getresponse()
        data = r.read()
        try:
            doc = json.loads(data) if data else None
        except ValueError:
            doc = None
        if r.status >= 400:
            msg = doc.get("error") if isinstance(doc, dict) else data[:200].decode("utf-8", "replace")
            raise ServerError(r.status, msg)
        return r.status, dict(r.getheaders()), doc

    def live(self):
        return self.request("GET", "/v2/health/live")[2]["live"]

    def server_metadata(self):
        return self.request("GET", "/v2")[2]

    def model_metadata(self, model):
        return self.request("GET", f"/v2/models/{urllib.parse.quote(model)}")[2]

    def infer_images(self, model, images, height, width, budget=None):
        """images: a list of height*width bytes objects (grey). Returns (labels, parameters)."""
        body = {"inputs": [{"name": "image", "datatype": "UINT8", "shape": [len(images), height, width, 1],
                            "data": [v for img in images for v in img]}]}
        if budget is not None:
            body["parameters"] = {"compute_budget": budget}
        _, _, doc = self.request("POST", f"/v2/models/{urllib.parse.quote(model)}/infer", json.dumps(body),
                                 {"Content-Type": "application/json"})
        out = {o["name"]: o for o in doc["outputs"]}
        return out["label"]["data"], doc.get("parameters", {})

    def classify_file(self, model, path, budget=None):
        with open(path, "rb") as f:
            data = f.read()
        kind = ("image/png" if data[:8] == b"\x89PNG\r\n\x1a\n" else "image/jpeg" if data[:2] == b"\xff\xd8"
                else "image/x-portable-anymap")
        headers = {"Content-Type": kind}
        if budget is not None:
            headers["X-Compute-Budget"] = str(budget)
        return self.request("POST", f"/v1/models/{urllib.parse.quote(model)}/classify", data, headers)[2]


def read_idx(path):
    """An IDX file of unsigned bytes (gzip or raw): (dims, bytes)."""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:3] != b"\0\0\x08":
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    nd = raw[3]
    dims = struct.unpack(f">{nd}I", raw[4:4 + 4 * nd])
    return dims, raw[4 + 4 * nd:]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", default="http://127.0.0.1:8080")
    ap.add_argument("--api-key", help="sent as Authorization: Bearer KEY (default: $ACM_API_KEY)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("health")
    m = sub.add_parser("metadata")
    m.add_argument("model", nargs="?", default="fmnist")
    i = sub.add_parser("infer")
    i.add_argument("--model", default="fmnist")
    i.add_argument("--budget", type=float)
    i.add_argument("--count", type=int, default=100)
    i.add_argument("--batch", type=int, default=8)
    i.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    c = sub.add_parser("classify")
    c.add_argument("--model", default="fmnist")
    c.add_argument("--budget", type=float)
    c.add_argument("files", nargs="+")
    a = ap.parse_args()
    try:
        cl = Client(a.server, api_key=a.api_key)
        if a.cmd == "health":
            print(json.dumps({"live": cl.live(), "server": cl.server_metadata()}))
        elif a.cmd == "metadata":
            print(json.dumps(cl.model_metadata(a.model), indent=2))
        elif a.cmd == "infer":
            (n, h, w), px = read_idx(os.path.join(a.data, "t10k-images-idx3-ubyte.gz"))
            _, labels = read_idx(os.path.join(a.data, "t10k-labels-idx1-ubyte.gz"))
            names = cl.model_metadata(a.model)["labels"]
            count, correct, budgets = min(a.count, n), 0, []
            for start in range(0, count, a.batch):
                idx = range(start, min(start + a.batch, count))
                got, par = cl.infer_images(a.model, [px[k * h * w:(k + 1) * h * w] for k in idx], h, w, a.budget)
                correct += sum(g == names[labels[k]] for g, k in zip(got, idx))
                budgets.append(par.get("budget_applied"))
            print(json.dumps({"model": a.model, "images": count, "correct": correct, "accuracy": correct / count,
                              "budget_applied": budgets[-1] if budgets else None}))
        else:
            for path in a.files:
                r = cl.classify_file(a.model, path, a.budget)
                print(f"{path}: {r['label']} ({100 * r['confidence']:.1f}%), budget {r['budget_applied']}, "
                      f"{r['flops']:.4g} of {r['flops_dense']:.4g} FLOPs")
    except ServerError as e:
        print(f"acm_client: the server answered {e.status}: {e.message}", file=sys.stderr)
        return 1
    except (ConnectionError, OSError) as e:
        print(f"acm_client: cannot reach {a.server}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
