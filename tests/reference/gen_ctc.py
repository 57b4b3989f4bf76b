#!/usr/bin/python3
"""gen_ctc.py — golden data for engine/ctc.c (CTC decoding), computed independently in float64 with numpy.

Run with Debian's interpreter (the python3 first on PATH has no numpy):
    /usr/bin/python3 tests/reference/gen_ctc.py
Writes tests/golden/ctc_cases.json: {"inputs": [logits, ...], "cases": [case, ...]}: each input the flat [T*V]
logits of one or more cases (float32 values, written as the shortest decimal that reads back as the same float32);
each case: name, alphabet (symbols string), blank, mode ("greedy" | "beam"), beam, prune (null: off), max_text,
    frame_seconds, first_frame, words (word list or null), word_scores ([[prev_id, id, score], ...] or null), T, V,
    input (index),
    expected: {text, score, chars [[start, end]...], words [[text, start, end, confidence, id]...], truncated,
    incomplete, trailing_blank} of the final result, and for some cases partials: per frame [text, stable_len,
    n_words, n_stable_words] of the partial result after that frame.
The decoders are restated here from engine/ctc.h, not from the C code: texts are tuples in dicts, alignments are
explicit lists of per-character records, nothing is shared. Before writing, the script checks itself: on small cases
the beam search with a beam wide enough to keep every prefix must find the text of highest total probability and its
best path by brute force over all V^T paths (probabilities summed per collapsed text), with and without a word list.
Random cases are redrawn until every decision (argmax, beam cut, alignment choice) has a margin of at least 1e-9, so
that the C decoder, in double from the same float32 logits, must reproduce every decision exactly.
"""
import itertools
import json
import math
import os

import numpy as np

NEG = -math.inf
DEFAULT_ALPHABET = "_abcdefghijklmnopqrstuvwxyz' "
MARGIN = 1e-9


class Margins:
    """Smallest gap seen between two finite quantities a decision compared."""

    def __init__(self):
        self.min = math.inf

    def gap(self, a, b):
        if a != NEG and b != NEG:
            self.min = min(self.min, abs(a - b))


def log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - (m + np.log(np.exp(x - m).sum(axis=1, keepdims=True)))


def lae(a, b):
    return float(np.logaddexp(a, b))


def words_of(alpha, recs, want_id=None):
    """recs: closed per-character records (sym, start, vstart, end, vend). Words split at spaces."""
    out, i = [], 0
    text = "".join(alpha[r[0]] for r in recs)
    while i < len(recs):
        if text[i] == " ":
            i += 1
            continue
        j = i
        while j < len(recs) and text[j] != " ":
            j += 1
        s, e = recs[i][1], recs[j - 1][3]
        conf = math.exp((recs[j - 1][4] - recs[i][2]) / (e - s))
        w = text[i:j]
        out.append([w, s, e, conf, want_id(w) if want_id else -1, j])
        i = j
    return text, out


# --------------------------------------------------------------------------------------------------------- greedy ---
def greedy(lp, alpha, blank, max_text, t0, margins=None):
    space = next((i for i, ch in enumerate(alpha) if ch == " " and i != blank), -1)
    recs, prev, cur, v, trunc = [], blank, None, 0.0, False
    for t in range(lp.shape[0]):
        row = lp[t]
        a = int(np.argmax(row))  # first maximum: the lowest index
        srt = np.sort(row)
        if margins is not None and len(srt) > 1:
            margins.gap(srt[-1], srt[-2])
        v0, v = v, v + row[a]
        f = t0 + t
        if a == blank:
            cur = None
        elif a == prev:
            if cur is not None:
                cur[3], cur[4] = f + 1, v
        else:
            cur = None
            if a == space and (not recs or alpha[recs[-1][0]] == " "):
                pass
            elif len(recs) == max_text:
                trunc = True
            else:
                cur = [a, f, v0, f + 1, v]
                recs.append(cur)
        prev = a
    return recs, v, trunc


# ---------------------------------------------------------------------------------------------------- beam search ---
class Hyp:
    __slots__ = ("pb", "pnb", "vb", "vnb", "hb", "hnb", "word", "prev")

    def __init__(self, pb, pnb, vb, vnb, hb, hnb, word, prev):
        self.pb, self.pnb, self.vb, self.vnb = pb, pnb, vb, vnb
        self.hb = hb      # (records, end, vend): best blank-ending alignment, last record still open; or None
        self.hnb = hnb    # records: best symbol-ending alignment, last record open (its run goes on); or None
        self.word = word  # the word being spelled (string)
        self.prev = prev  # id of the last word closed by a space, -1

    def copy(self):
        return Hyp(self.pb, self.pnb, self.vb, self.vnb, self.hb, self.hnb, self.word, self.prev)


def close(recs, end, vend):
    """Records with the last one's run ended at `end` (score vend)."""
    if not recs:
        return []
    last = recs[-1]
    return recs[:-1] + [(last[0], last[1], last[2], end, vend)]


def beam_search(lp, alpha, blank, beam, max_text, t0, lexicon=None, scores=None, margins=None, partials=None,
                prune=None):
    V = len(alpha)
    space = next((i for i, ch in enumerate(alpha) if ch == " " and i != blank), -1)
    ids = {w: i for i, w in enumerate(lexicon)} if lexicon is not None else None
    prefixes = set()
    if lexicon is not None:
        for w in lexicon:
            for k in range(len(w) + 1):
                prefixes.add(w[:k])
    hook = (lambda p, w: scores.get((p, w), 0.0)) if scores else (lambda p, w: 0.0)
    hyps = [((), Hyp(0.0, NEG, 0.0, NEG, ([], t0, 0.0), None, "", -1))]
    trunc = False
    for t in range(lp.shape[0]):
        row, f = lp[t], t0 + t
        stays = {}
        for key, h in hyps:
            s = h.copy()
            s.pb = lae(h.pb, h.pnb) + row[blank]
            if margins:
                margins.gap(h.vb, h.vnb)
            if h.vb >= h.vnb:
                s.vb = h.vb + row[blank]
            else:
                s.vb = h.vnb + row[blank]
                s.hb = (h.hnb, f, h.vnb)
            s.pnb = h.pnb + row[key[-1]] if key else NEG
            s.vnb = h.vnb + row[key[-1]] if key else NEG
            stays[key] = s
        props = {}  # insertion order = order of first proposal
        for key, h in hyps:
            props.setdefault(key, stays[key])
            if len(key) >= max_text:
                trunc = True
                continue
            for c in range(V):
                if c == blank:
                    continue
                word, prev, ws = h.word, h.prev, 0.0
                if lexicon is None:
                    if c == space and (not key or key[-1] == space):
                        continue
                elif c == space:
                    if h.word == "" or h.word not in ids:
                        continue
                    word, prev, ws = "", ids[h.word], hook(h.prev, ids[h.word])
                    if math.isnan(ws) or ws == math.inf:
                        ws = NEG
                else:
                    word = h.word + alpha[c]
                    if word not in prefixes:
                        continue
                rep = key and c == key[-1]
                p = (h.pb if rep else lae(h.pb, h.pnb)) + row[c] + ws
                if margins and not rep:
                    margins.gap(h.vb, h.vnb)
                from_b = rep or h.vb >= h.vnb
                v = h.vb if from_b else h.vnb
                if p == NEG or v == NEG:
                    continue  # no path, or a word the hook refuses: nothing to add
                if from_b:
                    recs = close(h.hb[0], h.hb[1], h.hb[2])
                else:
                    recs = close(h.hnb, f, h.vnb)
                hist = recs + [(c, f, v, None, None)]
                nk = key + (c,)
                if nk in stays:
                    z = props.setdefault(nk, stays[nk])
                    z.pnb = lae(z.pnb, p)
                    if margins:
                        margins.gap(v + row[c], z.vnb)
                    if v + row[c] > z.vnb:
                        z.vnb, z.hnb = v + row[c], hist
                else:
                    props[nk] = Hyp(NEG, p, NEG, v + row[c], None, hist, word, prev)
        items = [(k, h, lae(h.pb, h.pnb)) for k, h in props.items()]
        items = [it for it in items if it[2] != NEG]
        items.sort(key=lambda it: -it[2])  # stable: ties keep the order of first proposal
        if margins and len(items) > beam and items[beam - 1][2] != items[beam][2]:
            margins.gap(items[beam - 1][2], items[beam][2])
        kept = items[:beam]
        if prune:  # the beam threshold: nothing more than `prune` below the best
            floor = kept[0][2] - prune
            if margins:
                for it in items[1:beam + 1]:
                    margins.gap(it[2], floor)
            kept = [it for it in kept if it[2] >= floor]
        hyps = [(k, h) for k, h, _ in kept]
        for _, h in hyps:
            if h.vb == NEG:
                h.hb = None
        if partials is not None:
            partials.append(result(hyps, alpha, f + 1, ids, hook, final=False))
    return hyps, trunc


def alignment(h, now):
    if h.vb >= h.vnb:
        return close(h.hb[0], h.hb[1], h.hb[2])
    return close(h.hnb, now, h.vnb)


def node_key(recs_open, k):
    """The identity of a history's k-th node: records before it with their ends, and its own start."""
    return tuple(recs_open[:k - 1]) + (recs_open[k - 1][:3],)


def result(hyps, alpha, now, ids, hook, final):
    best, best_s, incomplete = 0, lae(hyps[0][1].pb, hyps[0][1].pnb), 0
    if ids is not None and final:
        best = -1
        for i, (k, h) in enumerate(hyps):
            if h.word != "" and h.word not in ids:
                continue
            s = lae(h.pb, h.pnb) + (hook(h.prev, ids[h.word]) if h.word else 0.0)
            if s == NEG:
                continue
            if best < 0 or s > best_s:
                best, best_s = i, s
        if best < 0:
            best, best_s, incomplete = 0, lae(hyps[0][1].pb, hyps[0][1].pnb), 1
    recs = alignment(hyps[best][1], now)
    # stable: the deepest node all histories (blank- and symbol-ending, of every hypothesis) share
    hists = []
    for _, h in hyps:
        if h.hb is not None:
            hists.append(h.hb[0])
        if h.hnb is not None:
            hists.append(h.hnb)
    depth = min(len(x) for x in hists)
    stable = 0
    for k in range(1, depth + 1):
        if all(node_key(x, k) == node_key(hists[0], k) for x in hists):
            stable = k
        else:
            break
    text, words = words_of(alpha, recs, (lambda w: ids.get(w, -1)) if ids is not None else None)
    n_stable = sum(1 for w in words if w[5] < len(recs) and w[5] < stable)
    return dict(text=text, score=best_s, recs=recs, words=words, stable=stable, n_stable=n_stable,
                incomplete=incomplete)


# ------------------------------------------------------------------------------------------------- brute force ---
def brute_force(lp, alpha, blank, lexicon=None):
    """Total probability of every text (paths summed after collapsing) and each text's best path score."""
    T, V = lp.shape
    space = next((i for i, ch in enumerate(alpha) if ch == " " and i != blank), -1)
    tot, best = {}, {}
    for path in itertools.product(range(V), repeat=T):
        out, prev = [], blank
        for a in path:
            if a != blank and a != prev:
                out.append(a)
            prev = a
        text = "".join(alpha[a] for a in out)
        if space >= 0 and (text.startswith(" ") or "  " in text):
            continue  # the space rule: such prefixes are never made
        if lexicon is not None:
            ws = text.split(" ")
            if any(w not in lexicon for w in ws[:-1]) or not any(x.startswith(ws[-1]) for x in lexicon):
                continue
            if ws[-1] and ws[-1] not in lexicon:
                continue  # final results end in a complete word
        s = float(sum(lp[t, a] for t, a in enumerate(path)))
        tot[text] = lae(tot.get(text, NEG), s)
        best[text] = max(best.get(text, NEG), s)
    return tot, best


def self_check(rng):
    alpha = "_ab "
    for trial in range(40):
        T = int(rng.integers(1, 7))
        lp = log_softmax(rng.normal(0, 1.5, (T, 4)).astype(np.float32))
        for lex in (None, ["a", "ab", "b", "ba"]):
            tot, vit = brute_force(lp, alpha, 0, lex)
            hyps, _ = beam_search(lp, alpha, 0, 4 ** T + 1, 100, 0, lexicon=lex)
            r = result(hyps, alpha, T, {w: i for i, w in enumerate(lex)} if lex else None, lambda p, w: 0.0, True)
            want = max(tot, key=lambda k: tot[k])
            assert r["text"] == want, (trial, lex, r["text"], want)
            assert abs(r["score"] - tot[want]) < 1e-9, (r["score"], tot[want])
            # the alignment's score is the text's best path (forced alignment) when nothing was pruned
            recs = r["recs"]
            v = recs[-1][4] if recs else None
            if recs:
                # score along the chosen path: through the last character's run end, then blanks to the end
                v_end = v + sum(lp[t, 0] for t in range(recs[-1][3], T))
                assert abs(v_end - vit[want]) < 1e-9, (v_end, vit[want])
    # greedy: the best path's collapse
    for trial in range(40):
        T = int(rng.integers(1, 7))
        lp = log_softmax(rng.normal(0, 1.5, (T, 4)).astype(np.float32))
        recs, v, _ = greedy(lp, alpha, 0, 100, 0)
        assert abs(v - lp.max(axis=1).sum()) < 1e-12


# ---------------------------------------------------------------------------------------------------- the cases ---
def frames(alpha, spec, floor=1e-4):
    """spec: list of dicts {char: probability}; '_' is the blank (index 0). Unlisted symbols share `floor`."""
    rows = []
    for d in spec:
        p = np.full(len(alpha), floor)
        for ch, q in d.items():
            p[0 if ch == "_" else alpha.index(ch)] = q
        rows.append(np.log(p / p.sum()))
    return np.array(rows, dtype=np.float32)


def spell(alpha, text, rng, peak=0.9, blanks=(0, 3), runs=(1, 2), noise=0.0):
    """Frames that say `text`: each character a run of frames, blanks between (always between repeats)."""
    spec = [{"_": 0.95}] * int(rng.integers(0, 3))
    for i, ch in enumerate(text):
        nb = int(rng.integers(*blanks)) if i else 0
        if i and text[i - 1] == ch:
            nb = max(nb, 1)
        spec += [{"_": 0.9}] * nb
        spec += [{ch: peak, "_": (1 - peak) * 0.7}] * int(rng.integers(runs[0], runs[1] + 1))
    spec += [{"_": 0.95}] * int(rng.integers(1, 3))
    x = frames(alpha, spec)
    if noise:
        x = (x + rng.normal(0, noise, x.shape)).astype(np.float32)
    return x


def case(name, logits, alpha=DEFAULT_ALPHABET, mode="greedy", beam=1, words=None, scores=None, max_text=1024,
         first_frame=0, partials=False, need_margin=False, prune=None):
    logits = np.asarray(logits, dtype=np.float32)
    lp = log_softmax(logits)
    T, V = logits.shape
    assert V == len(alpha)
    m = Margins()
    plist = [] if partials else None
    if mode == "greedy":
        recs, v, trunc = greedy(lp, alpha, 0, max_text, first_frame, m if need_margin else None)
        text, ws = words_of(alpha, recs)
        exp = dict(text=text, score=v, recs=recs, words=ws, incomplete=0)
        if partials:
            for t in range(1, T + 1):
                r2, _, _ = greedy(lp[:t], alpha, 0, max_text, first_frame)
                tx, w2 = words_of(alpha, r2)
                plist.append(dict(text=tx, stable=len(tx), words=w2,
                                  n_stable=sum(1 for w in w2 if w[5] < len(tx))))
    else:
        ids = {w: i for i, w in enumerate(words)} if words is not None else None
        sc = {(a, b): s for a, b, s in scores} if scores else None
        hyps, trunc = beam_search(lp, alpha, 0, beam, max_text, first_frame, words, sc, m if need_margin else None,
                                  plist, prune)
        hook = (lambda p, w: sc.get((p, w), 0.0)) if sc else (lambda p, w: 0.0)
        exp = result(hyps, alpha, first_frame + T, ids, hook, final=True)
    if need_margin and m.min < MARGIN:
        return None
    am = np.argmax(logits, axis=1) if T else np.zeros(0, int)  # on the logits: the same argmax, ties the lowest index
    tail = 0
    while tail < T and am[T - 1 - tail] == 0:
        tail += 1
    out = dict(name=name, alphabet=alpha, blank=0, mode=mode, beam=beam, prune=prune, max_text=max_text,
               frame_seconds=0.04,
               first_frame=first_frame, words=words, word_scores=scores, T=T, V=V, logits=logits,
               expected=dict(text=exp["text"], score=float(exp["score"]),
                             chars=[[int(r[1]), int(r[3])] for r in exp["recs"]],
                             words=[[w[0], int(w[1]), int(w[2]), float(w[3]), int(w[4])] for w in exp["words"]],
                             truncated=int(trunc), incomplete=int(exp["incomplete"]), trailing_blank=tail))
    if partials:
        out["partials"] = [[p["text"], p["stable"], len(p["words"]), p["n_stable"]] for p in plist]
    return out


def crafted(rng):
    A = DEFAULT_ALPHABET
    cs = []
    # repeats collapse; a blank between repeats keeps both; runs give spans
    rep = frames(A, [{"a": .9}, {"a": .9}, {"_": .9}, {"a": .8}, {"b": .7}, {"b": .9}, {"_": .9}, {"_": .9}, {"c": .6}])
    cs.append(case("greedy_repeats", rep))
    cs.append(case("beam_repeats", rep, mode="beam", beam=4, partials=True))
    blank = frames(A, [{"_": .9}] * 7)
    cs.append(case("greedy_all_blank", blank))
    cs.append(case("beam_all_blank", blank, mode="beam", beam=8))
    one = frames(A, [{"h": .8}])
    cs.append(case("greedy_single_frame", one))
    cs.append(case("beam_single_frame", one, mode="beam", beam=3))
    cs.append(case("greedy_zero_frames", np.zeros((0, len(A)), np.float32)))
    cs.append(case("beam_zero_frames", np.zeros((0, len(A)), np.float32), mode="beam", beam=2))
    # ties: equal best symbols -> the lowest index (blank before 'a' before 'b')
    tie = frames(A, [{"a": .4, "b": .4, "_": .2}, {"_": .45, "c": .45}, {"d": .3, "e": .3, "_": .3}])
    cs.append(case("greedy_ties", tie))
    cs.append(case("beam_ties", frames(A, [{"a": .4, "b": .4, "_": .2}]), mode="beam", beam=1))
    cs.append(case("beam_ties_2", frames(A, [{"a": .4, "b": .4, "_": .2}]), mode="beam", beam=2))
    # beam vs greedy: blank wins every frame, but "a" has more mass summed over alignments
    bg = frames(A, [{"_": .55, "a": .45}] * 2)
    g, b = case("greedy_vs_beam", bg), case("beam_vs_greedy", bg, mode="beam", beam=4)
    assert g["expected"]["text"] == "" and b["expected"]["text"] == "a", (g["expected"], b["expected"])
    cs += [g, b]
    # spaces: never leading, never doubled; a trailing space stays in the text but not in the words
    sp = frames(A, [{" ": .9}, {"_": .9}, {"h": .9}, {"i": .9}, {" ": .9}, {"_": .9}, {" ": .9}, {"y": .9},
                    {"o": .8}, {"_": .9}, {" ": .8}])
    cs.append(case("greedy_spaces", sp, first_frame=100, partials=True))
    cs.append(case("beam_spaces", sp, mode="beam", beam=4, first_frame=100))
    # timings: "hello world" with runs and blanks, a frame offset
    hw = spell(A, "hello world", rng, runs=(1, 3))
    cs.append(case("greedy_hello_world", hw, first_frame=25, partials=True))
    cs.append(case("beam_hello_world", hw, mode="beam", beam=8, first_frame=25, partials=True))
    # a beam threshold drops the alternatives that each miss one character, so the stable prefix moves on
    cs.append(case("beam_hello_world_prune", hw, mode="beam", beam=8, first_frame=25, partials=True, prune=2.0))
    assert cs[-1]["partials"][-1][1] > cs[-2]["partials"][-1][1] + 5, (cs[-1]["partials"][-1], cs[-2]["partials"][-1])
    # the word list changes the result: acoustics say "cat", the list has "cut" and "cab"
    cat = frames(A, [{"c": .9}, {"_": .9}, {"a": .5, "u": .3, "_": .2}, {"_": .9}, {"t": .5, "b": .3, "_": .2},
                     {"_": .9}])
    u = case("beam_cat_free", cat, mode="beam", beam=8)
    c = case("beam_cat_words", cat, mode="beam", beam=8, words=["cut", "cab", "at"])
    assert u["expected"]["text"] == "cat" and c["expected"]["text"] not in ("cat", ""), (u["expected"], c["expected"])
    cs += [u, c]
    # word list, two words, and a hook that flips an acoustic near-tie ("to" vs "two")
    two = spell(A, "go two", rng, runs=(1, 1), blanks=(1, 2))
    words = ["go", "two", "to", "too"]
    lp = frames(A, [{"g": .9}, {"_": .9}, {"o": .9}, {" ": .9}, {"t": .9}, {"w": .35, "o": .3, "_": .35},
                    {"o": .9}, {"_": .9}])
    nohook = case("beam_hook_off", lp, mode="beam", beam=8, words=words)
    hook = case("beam_hook_on", lp, mode="beam", beam=8, words=words,
                scores=[[0, 2, -3.0], [-1, 0, -0.5], [0, 1, -0.1]],
                partials=True)
    assert nohook["expected"]["text"] != hook["expected"]["text"], (nohook["expected"], hook["expected"])
    cs += [nohook, hook, case("beam_go_two", two, mode="beam", beam=8, words=words)]
    # an exact Viterbi tie between a hypothesis' own alignment and an extension: "a" placed on frame 0 (its own
    # history, kept on ties) or on frame 1; greedy takes the blank on frame 0 (the lower index)
    vt = frames(A, [{"a": .45, "_": .45}, {"a": .9}, {"_": .9}])
    cs.append(case("beam_viterbi_tie", vt, mode="beam", beam=4, partials=True))
    cs.append(case("greedy_viterbi_tie", vt))
    assert cs[-2]["expected"]["chars"] == [[0, 2]] and cs[-1]["expected"]["chars"] == [[1, 2]]
    # the segment stops inside a word: no complete hypothesis -> the best one, flagged
    cs.append(case("beam_incomplete", frames(A, [{"g": .9}, {"_": .9}, {"o": .9}, {" ": .9}, {"t": .9}]), mode="beam",
                   beam=4, words=["go", "two"]))
    # max_text: characters past it are dropped (greedy) / hypotheses stop growing (beam)
    long = spell(A, "abcdefgh", rng)
    cs.append(case("greedy_truncated", long, max_text=5))
    cs.append(case("beam_truncated", long, mode="beam", beam=4, max_text=5))
    # a small alphabet, blank not first would be a different model; here: no space at all (one word)
    ab = frames("_ab", [{"a": .6, "_": .4}, {"b": .5, "a": .3, "_": .2}, {"_": .5, "b": .5}])
    cs.append(case("greedy_small_alphabet", ab, alpha="_ab"))
    cs.append(case("beam_small_alphabet", ab, alpha="_ab", mode="beam", beam=3, partials=True))
    return cs


SENTENCES = ["call mom at five thirty", "set a timer for ten minutes", "what's the weather like",
             "spell s m i t h", "play the next song", "i'd like to book a table for two", "three oh seven",
             "remind me to call david tomorrow", "the quarter past nine", "x ray yankee zulu"]


def random_cases(rng):
    A = DEFAULT_ALPHABET
    vocab = sorted({w for s in SENTENCES for w in s.split()} | {"tree", "of", "seven", "call", "calm", "ball",
                                                                "timer", "time", "tile", "weather", "whether"})
    cs, differ, n = [], 0, 0
    while n < 10:
        s = SENTENCES[n]
        x = spell(A, s, rng, peak=float(rng.uniform(0.45, 0.9)), runs=(1, 2), blanks=(0, 3),
                  noise=float(rng.uniform(0.8, 1.6)))
        made = []
        # word scores on pairs of the sentence's own words and random others (log domain, some favouring a word)
        ids = [vocab.index(w) for w in s.split()]
        pairs = {(-1 if i == 0 else ids[i - 1], ids[i]) for i in range(len(ids)) if rng.random() < 0.7}
        pairs |= {(int(rng.integers(-1, len(vocab))), int(rng.integers(0, len(vocab)))) for _ in range(30)}
        scores = [[a, b, round(float(rng.uniform(-3, 1)), 3)] for a, b in sorted(pairs)]
        for mode, beam, words, sc, part in (("greedy", 1, None, None, n < 3), ("beam", 1, None, None, False),
                                            ("beam", 4, None, None, False), ("beam", 8, None, None, n < 3),
                                            ("beam", 16, None, None, False), ("beam", 8, vocab, None, n < 3),
                                            ("beam", 8, vocab, scores, n < 2), ("beam", 8, None, None, n < 3)):
            pr = 4.0 if len(made) == 7 else None  # the last: beam 8 with a threshold
            c = case(f"random{n}_{mode}{beam if mode == 'beam' else ''}{'_words' if words else ''}"
                     f"{'_scores' if sc else ''}{'_prune' if pr else ''}", x, mode=mode, beam=beam, words=words,
                     scores=sc, first_frame=int(rng.integers(0, 1000)), partials=part, need_margin=True, prune=pr)
            if c is None:
                break
            made.append(c)
        if len(made) < 8:
            continue  # a near-tie somewhere: draw again
        differ += made[0]["expected"]["text"] != made[3]["expected"]["text"]
        differ += made[3]["expected"]["text"] != made[5]["expected"]["text"]
        cs += made
        n += 1
    assert differ >= 3, f"only {differ} random cases where the decoders disagree"
    return cs


def f32_text(v):
    """Shortest decimal that reads back (decimal -> double -> float32, as the C test reads it) as the same float32."""
    t = np.format_float_positional(np.float32(v), unique=True, trim="-")
    if np.float32(float(t)) != np.float32(v):
        t = repr(float(v))
    return t


def main():
    rng = np.random.default_rng(20261203)
    self_check(rng)
    cs = crafted(rng) + random_cases(rng)
    inputs = []  # distinct logits, each written once; a case names its input by index
    for c in cs:
        x = c.pop("logits")
        for i, y in enumerate(inputs):
            if y.shape == x.shape and np.array_equal(y, x):
                c["input"] = i
                break
        else:
            c["input"] = len(inputs)
            inputs.append(x)
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "golden", "ctc_cases.json")
    with open(path, "w") as f:
        f.write('{"inputs":[' + ",".join("[" + ",".join(f32_text(v) for v in x.reshape(-1)) + "]" for x in inputs))
        f.write('],\n"cases":[\n' + ",\n".join(json.dumps(c, separators=(",", ":")) for c in cs) + "]}\n")
    for c in cs:
        e = c["expected"]
        print(f"{c['name']:28s} T={c['T']:4d} {c['mode']:6s} beam={c['beam']:2d} -> {e['text']!r}")
    print(f"{len(cs)} cases -> {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
