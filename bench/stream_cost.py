#!/usr/bin/python3
"""stream_cost.py — a stream's compute by what its audio holds (bench/silence_cost.sh; tests/bench/test_stream_cost.c).

Reads the spans of an audio file (SPANS: one span a line, "START END LABEL", seconds from the file's start, e.g.
"3.52 5.52 silence") and the messages of one stream of that file (MESSAGES: `acm transcribe --stream --json`, one
JSON message a line). Every `partial` covers the audio from the previous partial's `audio_s` (0 for the first) to its
own; its `chunk.flops` and realised `chunk.budget` go to the label of the span that holds all of it, or to "boundary"
when it straddles spans or lies outside every span. Prints one JSON object: per label the chunks, seconds of audio,
FLOPs, GFLOPs per second of audio and the seconds-weighted realised budget. With --chunks FILE, also one line per
partial: start, end, label, GFLOPs, budget (for a picture).
Several SPANS MESSAGES pairs: the sums over all of them (--chunks: the lines of each pair in turn, its index first).
Usage: stream_cost.py SPANS MESSAGES [SPANS MESSAGES ...] [--chunks FILE]
"""
import json
import sys


def read_spans(path):
    spans = []
    for n, line in enumerate(open(path), 1):
        f = line.split()
        if not f:
            continue
        if len(f) != 3:
            sys.exit("%s:%d: 'START END LABEL' expected" % (path, n))
        s, e = float(f[0]), float(f[1])
        if not e > s:
            sys.exit("%s:%d: the span ends before it starts" % (path, n))
        spans.append((s, e, f[2]))
    return spans


def label_of(spans, s, e, eps=1e-6):
    for a, b, lab in spans:
        if s >= a - eps and e <= b + eps:
            return lab
    return "boundary"


def attribute(spans, messages):
    """[(start, end, label, flops, budget)] for every partial of the messages, in order."""
    out, t = [], 0.0
    for m in messages:
        if m.get("type") != "partial":
            continue
        end, c = float(m["audio_s"]), m["chunk"]
        out.append((t, end, label_of(spans, t, end), float(c["flops"]), float(c["budget"])))
        t = end
    return out


def summarise(chunks):
    by = {}
    for s, e, lab, fl, bu in chunks:
        d = by.setdefault(lab, {"chunks": 0, "seconds": 0.0, "flops": 0.0, "budget_s": 0.0})
        d["chunks"] += 1
        d["seconds"] += e - s
        d["flops"] += fl
        d["budget_s"] += bu * (e - s)
    for d in by.values():
        d["gflops_per_s"] = d["flops"] / 1e9 / d["seconds"] if d["seconds"] > 0 else 0.0
        d["budget"] = d.pop("budget_s") / d["seconds"] if d["seconds"] > 0 else 0.0
    return by


def read_messages(path):
    msgs = []
    for n, line in enumerate(open(path), 1):
        if line.strip():
            try:
                msgs.append(json.loads(line))
            except ValueError:
                sys.exit("%s:%d: not a JSON message" % (path, n))
    return msgs


def main(argv):
    args, chunk_file = argv[1:], None
    if "--chunks" in args:
        i = args.index("--chunks")
        if i + 1 >= len(args):
            sys.exit("--chunks: a file name expected")
        chunk_file = args[i + 1]
        del args[i:i + 2]
    if not args or len(args) % 2:
        sys.exit("usage: stream_cost.py SPANS MESSAGES [SPANS MESSAGES ...] [--chunks FILE]")
    every = []
    for k in range(0, len(args), 2):
        chunks = attribute(read_spans(args[k]), read_messages(args[k + 1]))
        if not chunks:
            sys.exit("%s: no partial message" % args[k + 1])
        every.append(chunks)
    if chunk_file:
        with open(chunk_file, "w") as f:
            for k, chunks in enumerate(every):
                for s, e, lab, fl, bu in chunks:
                    f.write("%d %.4f %.4f %s %.6f %.4f\n" % (k, s, e, lab, fl / 1e9, bu))
    print(json.dumps(summarise([c for chunks in every for c in chunks]), sort_keys=True))


if __name__ == "__main__":
    main(sys.argv)
