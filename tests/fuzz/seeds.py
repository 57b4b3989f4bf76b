#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/NAME/seed-*). Run by hand from the repository root:
/usr/bin/python3 tests/fuzz/seeds.py. Standard library only. The JPEG seeds (seed-jpeg_*) were written once with libturbojpeg and are kept
as committed files."""
import gzip, json, os, struct, zlib

def put(target, name, data):
    d = os.path.join("tests/fuzz/corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

# ---- OIP JSON ----
img = [[[[ (x * 7 + y * 13) % 256 ] for x in range(4)] for y in range(4)]]
put("oip_json", "nested", json.dumps({"id": "a", "parameters": {"compute_budget": 0.5, "compute_policy": "cap",
    "deadline_ms": 30, "priority": 1, "explain": True}, "inputs": [{"name": "image", "datatype": "UINT8",
    "shape": [1, 4, 4, 1], "data": img}]}))
put("oip_json", "flat_fp32", json.dumps({"inputs": [{"name": "pixel_values", "datatype": "FP32", "shape": [1, 1, 2, 2],
    "data": [0.5, -1.25, 3e-3, 1e10]}], "outputs": [{"name": "logits", "parameters": {"binary_data": True}}]}))
put("oip_json", "many_types", json.dumps({"inputs": [{"name": n, "datatype": t, "shape": [2], "data": d} for n, t, d in [
    ("b", "BOOL", [True, False]), ("i", "INT64", [-9223372036854775807, 5]), ("u", "UINT16", [0, 65535]),
    ("h", "FP16", [65504, -0.5])]], "parameters": {"binary_data_output": False, "compute_budget_min": 0.25}}))
put("oip_json", "escaped_keys", '{"param\\u0065ters":{"deadline_ms":5,"x":["]}\\"",{"y":[]}]},"inputs":[{"name":"\\u00e9",'
    '"datatype":"INT8","shape":[1,1],"data":[[-128]]}],"id":"\\"}"}')
put("oip_json", "bad_shape", '{"inputs":[{"name":"x","datatype":"UINT8","shape":[4294967296,4294967296],"data":[]}]}')
put("oip_json", "bad_truncated", '{"inputs":[{"name":"x","datatype":"UINT8","shape":[2],"data":[1,')
# the admission peek: duplicate parameters (the last wins), a shape spaced out, a long escaped key it does not decode
put("oip_json", "peek_dups", '{"parameters":{"priority":1},"inputs":[{"shape":"x","name":"i","datatype":"UINT8",'
    '"shape": [ 2 ,\t1 ],"data":[[1],[2]]}],"parameters":{"priority":2,"deadline_ms":9}}')
put("oip_json", "peek_long_key", '{"' + '\\u0070' * 80 + '":[1],"parameters":{"compute_budget":1},"inputs":'
    '[{"name":"a","datatype":"UINT8","shape":[0],"data":[]}]}')

# ---- CTC: mode byte, text-limit byte, word list, 0xff, logits (byte / 16) of 29-symbol frames ----
def ctc_frames(text):
    out = b""
    for ch in text:
        hot = 0 if ch == "_" else "_abcdefghijklmnopqrstuvwxyz' ".index(ch)
        out += bytes(96 if s == hot else 8 for s in range(29))
    return out
put("ctc", "beam_words", bytes([0x1f, 63]) + b"one\ntwo\nto\nthree\n" + b"\xff" + ctc_frames("t_w_o_ _o_n_e__"))
put("ctc", "greedy", bytes([0x00, 40]) + b"\xff" + ctc_frames(" _hh_e_l_l_o  _w_o_r_l_d_"))
put("ctc", "beam_free", bytes([0x0f, 5]) + b"\xff" + ctc_frames("a_b_c_d_e_f_g_h"))
put("ctc", "bad_words", bytes([0x11, 10]) + b"caf\xc3\xa9\nT_o\n" + b"\xff" + ctc_frames("ca_fe"))
put("ctc", "incomplete", bytes([0x13, 20]) + b"Go two" + b"\xff" + ctc_frames("g_o_ _t"))
put("ctc", "pruned", bytes([0x3f, 30]) + b"one two to\n" + b"\xff" + ctc_frames("t_o_ _t_w_o_ _o_n_e"))

# ---- OIP binary: 2-byte little-endian JSON length, then the body ----
def binreq(inputs, blobs, outputs=None):
    hdr = {"inputs": inputs}
    if outputs: hdr["outputs"] = outputs
    h = json.dumps(hdr).encode()
    return struct.pack("<H", len(h)) + h + b"".join(blobs)
put("oip_binary", "uint8", binreq([{"name": "image", "datatype": "UINT8", "shape": [1, 2, 2, 1],
    "parameters": {"binary_data_size": 4}}], [bytes([1, 2, 3, 250])], [{"name": "logits", "parameters": {"binary_data": True}},
    {"name": "label", "parameters": {"binary_data": True}}]))
put("oip_binary", "mixed", binreq([
    {"name": "a", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": 8}},
    {"name": "b", "datatype": "INT16", "shape": [2], "parameters": {"binary_data_size": 4}},
    {"name": "c", "datatype": "FP16", "shape": [1], "parameters": {"binary_data_size": 2}},
    {"name": "d", "datatype": "BOOL", "shape": [2], "data": [True, False]}],
    [struct.pack("<2f", 1.5, -2), struct.pack("<2h", -3, 300), struct.pack("<H", 0x3800)]))
put("oip_binary", "fp64_u64", binreq([
    {"name": "a", "datatype": "FP64", "shape": [1], "parameters": {"binary_data_size": 8}},
    {"name": "b", "datatype": "UINT64", "shape": [1], "parameters": {"binary_data_size": 8}}],
    [struct.pack("<d", 0.1), struct.pack("<Q", 2**63)]))
j = json.dumps({"inputs": [{"name": "x", "datatype": "UINT8", "shape": [1], "data": [7]}]}).encode()
put("oip_binary", "json_only", struct.pack("<H", len(j)) + j)

# ---- images: first byte picks grey (even) or RGB (odd) ----
def png(w, h, colour, pixels, bitdepth=8, palette=None):
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    raw = b"".join(b"\x00" + pixels[y] for y in range(h))
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bitdepth, colour, 0, 0, 0))
    if palette: out += chunk(b"PLTE", palette)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
put("image", "png_grey", b"\x00" + png(4, 3, 0, [bytes((x * 60 + y) % 256 for x in range(4)) for y in range(3)]))
put("image", "png_rgb", b"\x01" + png(3, 2, 2, [bytes((x * 80 + y * 9 + c) % 256 for x in range(3) for c in range(3)) for y in range(2)]))
put("image", "png_rgba16", b"\x01" + png(2, 2, 6, [bytes(range(16)), bytes(range(16, 32))], bitdepth=16))
put("image", "png_palette", b"\x00" + png(2, 2, 3, [bytes([0, 1]), bytes([1, 0])], palette=bytes([255, 0, 0, 0, 0, 255])))
put("image", "pnm_p5", b"\x00" + b"P5\n# c\n3 2\n255\n" + bytes(range(0, 240, 40)))
put("image", "pnm_p6", b"\x01" + b"P6 2 1 255 " + bytes([255, 0, 0, 0, 255, 0]))
put("image", "pnm_p2", b"\x00" + b"P2\n2 2\n15\n0 5\n10 15\n")
put("image", "pnm_p3_16", b"\x01" + b"P3\n1 1\n65535\n65535 0 32768\n")
# grey + alpha 8 and 16 bit, composited over the background (first byte bit 2: white, bit 1: letterbox)
put("image", "png_ga8", b"\x06" + png(3, 2, 4, [bytes([0, 255, 128, 0, 255, 128]), bytes([9, 9, 99, 99, 200, 0])]))
put("image", "png_ga16", b"\x05" + png(2, 3, 4, [bytes(range(8 * y, 8 * y + 8)) for y in range(3)], bitdepth=16))
# Adam7: every pass, each row a filter byte 0 and its pixels (grey 8-bit, 9x9)
def adam7_rows(w, h, f):
    out = b""
    for x0, dx, y0, dy in [(0, 8, 0, 8), (4, 8, 0, 8), (0, 4, 4, 8), (2, 4, 0, 4), (0, 2, 2, 4), (1, 2, 0, 2), (0, 1, 1, 2)]:
        if x0 < w and y0 < h:
            out += b"".join(b"\x00" + bytes(f(x, y) for x in range(x0, w, dx)) for y in range(y0, h, dy))
    return out
def png_raw(w, h, colour, raw, bitdepth=8, interlace=0):
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bitdepth, colour, 0, 0, interlace)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
put("image", "png_adam7", b"\x02" + png_raw(9, 9, 0, adam7_rows(9, 9, lambda x, y: (x * 29 + y * 7) % 256), interlace=1))
bad_crc = bytearray(png(4, 3, 0, [bytes((x * 60 + y) % 256 for x in range(4)) for y in range(3)]))
bad_crc[-13] ^= 1  # the IDAT's CRC (the 12 bytes after it are IEND)
put("image", "png_bad_crc", b"\x00" + bytes(bad_crc))
put("image", "pbm_p1", b"\x00" + b"P1\n# bitmap\n5 2\n1 0 1 0 1\n01010\n")
put("image", "pbm_p4", b"\x01" + b"P4 10 2\n" + bytes([0xaa, 0xbf, 0xff, 0x80]))

# ---- SLA: budget, floor, deadline, priority, one per line ----
for i, s in enumerate(["0.5\n0.2\n30\nu=1, i", "1\n\n12.5\nu=7", "0.1\n0.9\n-1\nu=9", ".25\n5e-1\n3600000\ni=?0, u=0;a=1",
                       "\n\n0\nu=2, x=(1 \"a\" tok), y=:AAA=:", "1e0\n1\n1e9\nu=1,"]):
    put("sla", str(i), s)

# ---- IDX ----
def idx(dims, data): return bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)
put("idx", "images", idx([2, 2, 2], range(8)))
put("idx", "labels", idx([3], [0, 9, 4]))
put("idx", "labels_gz", gzip.compress(idx([3], [1, 2, 3])))
put("idx", "bad_trailing", idx([1], [1, 2]))

# ---- safetensors ----
def st(tensors, meta=None, pad=0):
    h = {k: v[0] for k, v in tensors.items()}
    if meta is not None: h["__metadata__"] = meta
    hj = json.dumps(h).encode() + b" " * pad
    return struct.pack("<Q", len(hj)) + hj + b"".join(v[1] for v in tensors.values())
put("safetensors", "f32", st({"w": ({"dtype": "F32", "shape": [2, 1], "data_offsets": [0, 8]}, struct.pack("<2f", 1, 2))},
                               {"acm": "{}"}))
put("safetensors", "mixed", st({"a": ({"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}, struct.pack("<2H", 0x3c00, 0x8001)),
                                 "b": ({"dtype": "BF16", "shape": [1], "data_offsets": [4, 6]}, struct.pack("<H", 0x3f80)),
                                 "c": ({"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}, bytes([1, 2])),
                                 "d": ({"dtype": "I64", "shape": [1], "data_offsets": [8, 16]}, struct.pack("<q", -1)),
                                 "e": ({"dtype": "I32", "shape": [0], "data_offsets": [16, 16]}, b"")}, pad=3))
put("safetensors", "bad_overlap", st({"a": ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, b"\0\0\0\0"),
                                      "b": ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, b"")}))

# ---- model: the "acm" metadata and tensors of engine/model.h (tiny ViT and speech models, a few broken) ----
def model(meta, shapes, fix=None):
    """shapes: {name: shape}; every tensor F32 with small deterministic values (fix: {name: [values]})."""
    tensors, off = {}, 0
    for i, (name, shape) in enumerate(shapes.items()):
        n = 1
        for d in shape: n *= d
        vals = (fix or {}).get(name) or [0.1 * ((i + j) % 7) - 0.3 for j in range(n)]
        b = struct.pack("<%df" % n, *vals)
        tensors[name] = ({"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}, b)
        off += len(b)
    return st(tensors, {"acm": json.dumps(meta)})
sp_meta = {"format_version": 1, "arch": "speech", "dim": 2, "depth": 1, "heads": 1, "mlp_hidden": 2, "alphabet": "ab",
           "chunk": 2, "left_context": 1, "rope_base": 100, "frontend": {"n_mels": 2, "stack": 2, "n_fft": 32,
           "win_length": 20, "hop_length": 10, "sample_rate": 1000, "fmax": 500},
           "budget": {"beta_min": 0.5, "mean": [[0.5, 1.0]]}}
sp_shapes = {"frontend.mel_mean": [2], "frontend.mel_std": [2], "frontend.proj.weight": [2, 4], "frontend.proj.bias": [2],
             "blocks.0.norm1.weight": [2], "blocks.0.norm1.bias": [2], "blocks.0.norm2.weight": [2],
             "blocks.0.norm2.bias": [2], "blocks.0.attn.qkv.weight": [6, 2], "blocks.0.attn.qkv.bias": [6],
             "blocks.0.attn.proj.weight": [2, 2], "blocks.0.attn.proj.bias": [2], "blocks.0.mlp.fc1.weight": [2, 2],
             "blocks.0.mlp.fc1.bias": [2], "blocks.0.mlp.fc2.weight": [2, 2], "blocks.0.mlp.fc2.bias": [2],
             "norm.weight": [2], "norm.bias": [2], "head.weight": [3, 2], "head.bias": [3]}
ones = {"frontend.mel_std": [1.0, 2.0]}
put("model", "speech_static", model(sp_meta, sp_shapes, ones))
acm_shapes = {k: v for k, v in sp_shapes.items() if ".mlp." not in k}
acm_shapes.update({"blocks.0.mlp.w1": [2, 2], "blocks.0.mlp.b1": [2], "blocks.0.mlp.w2": [2, 2],
                   "blocks.0.mlp.gate.0.weight": [3, 2], "blocks.0.mlp.gate.0.bias": [3]})
put("model", "speech_acm", model(dict(sp_meta, acm={"modules": [{"name": "blocks.0.mlp", "learners": 2}]}), acm_shapes, ones))
put("model", "bad_speech_std", model(sp_meta, sp_shapes, {"frontend.mel_std": [1.0, 0.0]}))
put("model", "bad_speech_alphabet", model(dict(sp_meta, alphabet="aa"), sp_shapes, ones))
put("model", "speech_default_frontend", model(dict(sp_meta, frontend={"n_mels": 2, "stack": 2}), sp_shapes, ones))
vit_shapes = {"patch_embed.proj.weight": [2, 4], "patch_embed.proj.bias": [2], "cls_token": [1, 1, 2],
              "pos_embed": [1, 2, 2]}
vit_shapes.update({k: v for k, v in sp_shapes.items() if k.startswith("blocks.") or k.startswith("norm.")})
vit_shapes.update({"head.weight": [2, 2], "head.bias": [2]})
put("model", "vit_static", model({"format_version": 1, "arch": "vit", "image_size": 2, "patch_size": 2, "in_chans": 1,
                                  "dim": 2, "depth": 1, "heads": 1, "mlp_hidden": 2, "num_classes": 2,
                                  "preprocess": {"mean": [0.5], "std": [0.5]}}, vit_shapes))

# ---- audio ----
def wav(rate, ch, samples, bits=16):
    data = b"".join(struct.pack("<h", s) for s in samples) if bits == 16 else bytes(samples)
    fmt = struct.pack("<HHIIHH", 1, ch, rate, rate * ch * bits // 8, ch * bits // 8, bits)
    return b"RIFF" + struct.pack("<I", 4 + 8 + len(fmt) + 8 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + \
        fmt + b"data" + struct.pack("<I", len(data)) + data
put("audio", "wav16", wav(8000, 1, [int(3000 * ((i % 20) - 10)) for i in range(160)]))
put("audio", "wav8_stereo", wav(11025, 2, [(i * 37) % 256 for i in range(200)], bits=8))
put("audio", "raw_l16", bytes([0, 7]) + b"".join(struct.pack(">h", (i * 997) % 30000 - 15000) for i in range(100)))
put("audio", "raw_s16le_stereo", bytes([1, 31]) + b"".join(struct.pack("<h", (i * 331) % 20000 - 10000) for i in range(200)))
