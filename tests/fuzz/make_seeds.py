#!/usr/bin/env python3
# Writes the seed corpora of the fuzz harnesses (tests/fuzz/corpus/<harness>/): small real files, in the
# input format of each harness (see fuzz_util.h split_pair for the two-file harnesses). Needs only Python's
# standard library, /usr/share/datasets/fashion-mnist and a `lockstep` binary (for the HDF5 data sets).
# Usage: make_seeds.py LOCKSTEP_BINARY
import gzip, json, os, struct, subprocess, sys, tempfile, zlib

here = os.path.dirname(os.path.abspath(__file__))
lockstep = sys.argv[1]
fmnist = "/usr/share/datasets/fashion-mnist"


def put(harness, name, data):
    d = os.path.join(here, "corpus", harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pair(first, second):
    return struct.pack("<I", len(first)) + first + second


# IDX: the first n Fashion-MNIST test images and labels, raw and gzip-compressed.
with gzip.open(os.path.join(fmnist, "t10k-images-idx3-ubyte.gz")) as f:
    all_images = f.read(16 + 3 * 784)
with gzip.open(os.path.join(fmnist, "t10k-labels-idx1-ubyte.gz")) as f:
    all_labels = f.read(8 + 3)
def idx_slice(n, rows=28, cols=28):
    images = struct.pack(">IIII", 0x803, n, rows, cols) + all_images[16:16 + n * rows * cols]
    labels = struct.pack(">II", 0x801, n) + all_labels[8:8 + n]
    return images, labels
img3, lab3 = idx_slice(3)
img1, lab1 = idx_slice(1, 4, 7)
put("idx", "three_raw", pair(img3, lab3))
put("idx", "one_4x7_raw", pair(img1, lab1))
put("idx", "three_gzip", pair(gzip.compress(img3, mtime=0), gzip.compress(lab3, mtime=0)))
put("idx", "one_images_gzip", pair(gzip.compress(img1, mtime=0), lab1))


# NPY: version 1, 2 and 3 headers, 3-d and 4-d images, each label dtype, raw and gzip.
def npy(descr, shape, payload, version=1):
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape_text)
    size_bytes = 2 if version == 1 else 4
    total = 6 + 2 + size_bytes + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    size = struct.pack("<H" if version == 1 else "<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode("latin1") + payload
pixels = bytes(range(2 * 3 * 4 * 2))
put("npy", "nhw_i8", pair(npy("|u1", (2, 3, 4), pixels[:24]), npy("<i8", (2,), struct.pack("<qq", 1, 0))))
put("npy", "nchw_i4_v2", pair(npy("|u1", (2, 2, 3, 4), pixels, 2), npy("<i4", (2,), struct.pack("<ii", 3, 1), 2)))
put("npy", "nhwc_u1_v3", pair(npy("|u1", (1, 2, 2, 3), pixels[:12], 3), npy("|u1", (1,), b"\x02", 3)))
put("npy", "nhw_gzip", pair(gzip.compress(npy("|u1", (2, 3, 4), pixels[:24]), mtime=0),
                            gzip.compress(npy("<i8", (2,), struct.pack("<qq", 0, 1)), mtime=0)))


# PNG: gray, RGB, palette (2-bit), 16-bit gray, gray + alpha, RGBA, and an interlaced RGB.
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
def png(width, height, depth, color, rows, interlace=0, extra=b""):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) + \
        chunk(b"IEND", b"")
put("png", "gray8", png(3, 2, 8, 0, [bytes([0, 128, 255]), bytes([1, 2, 3])]))
put("png", "rgb8", png(2, 2, 8, 2, [bytes(range(6)), bytes(range(6, 12))]))
put("png", "palette2", png(4, 1, 2, 3, [bytes([0b00011011])], extra=chunk(b"PLTE", bytes(range(12))) +
                           chunk(b"tRNS", b"\x00\x80")))
put("png", "gray16", png(2, 1, 16, 0, [struct.pack(">HH", 0, 65535)]))
put("png", "gray_alpha", png(2, 1, 8, 4, [bytes([10, 255, 20, 0])]))
put("png", "rgba", png(1, 2, 8, 6, [bytes([1, 2, 3, 4]), bytes([5, 6, 7, 8])]))
put("png", "rgb_adam7", png(1, 1, 8, 2, [bytes([9, 8, 7])], interlace=1))

# CIFAR-10: test_batch.bin of one and of two records (label byte + 3x32x32 image).
record = lambda label, seed: bytes([label]) + bytes((seed + i) % 256 for i in range(3072))
put("cifar", "one_record", record(3, 0))
put("cifar", "two_records", record(9, 7) + record(0, 100))

# Checkpoint manifests.
def manifest(step, files):
    return json.dumps({"format_version": 1, "step": step,
                       "files": [{"name": n, "bytes": b, "xxh64": x} for n, b, x in files]}).encode()
put("manifest", "two_files", manifest(1200, [("model.h5", 4096, "0123456789abcdef"),
                                             ("rank_1/rng.h5", 17, "fedcba9876543210")]))
put("manifest", "empty_list", manifest(0, []))
put("manifest", "escapes", b'{"format_version": 1, "step": 7, "files": [{"name": "a\\u00e9\\n.h5", '
                           b'"bytes": 0, "xxh64": "ef46db3751d8e999"}]}')

# metrics.jsonl records for the io/json harness (a torn last line in one).
lines = b"".join(json.dumps(r).encode() + b"\n" for r in [
    {"step": 0, "train_loss": 2.3, "lr": 0.1}, {"step": 5, "epoch": 1, "test_accuracy": 0.5},
    {"step": 9, "d_loss": None, "g_loss": 1e300}, {"note": "no step"}])
put("json", "four_records", lines)
put("json", "torn_last_line", lines + b'{"step": 10, "train_l')
put("json", "nested", b'{"step": 2.5e0, "x": [1, {"y": "\\ud83d\\ude00"}], "z": true}\n')


# TensorBoard event files: TFRecord framing with masked CRC-32C, hand-encoded Event protos.
def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF
def masked(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
def varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out
def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 2:
        return key + varint(len(payload)) + payload
    return key + payload
def record(data):
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked(crc32c(length))) + data + struct.pack("<I", masked(crc32c(data)))
def event(wall, step, body):
    return field(1, 1, struct.pack("<d", wall)) + field(2, 0, varint(step)) + body
version = event(1.5e9, 0, field(3, 2, b"brain.Event:2"))
scalar = event(1.5e9 + 1, 3, field(5, 2, field(1, 2, field(1, 2, b"train/loss") + field(2, 5, struct.pack("<f", 0.25)))))
image = event(1.5e9 + 2, 4, field(5, 2, field(1, 2, field(1, 2, b"samples") + field(4, 2, field(1, 0, varint(2)) +
              field(2, 0, varint(3)) + field(3, 0, varint(1)) + field(4, 2, b"\x89PNG\r\n\x1a\n")))))
put("tensorboard", "version_scalar", record(version) + record(scalar))
put("tensorboard", "version_scalar_image", record(version) + record(scalar) + record(image))

# HDF5 data sets written by `lockstep convert` (one split "train" of 3 Fashion-MNIST images, and of 1 image;
# older_*.h5 were written before the xxh64 array attributes, by the same steps).
with tempfile.TemporaryDirectory() as tmp:
    for name, (images, labels) in {"three": (img3, lab3), "one_4x7": (img1, lab1)}.items():
        ip, lp, out = (os.path.join(tmp, n) for n in ("images", "labels", name + ".h5"))
        open(ip, "wb").write(images)
        open(lp, "wb").write(labels)
        subprocess.run([lockstep, "convert", "--format", "idx", "--input", ip, "--labels", lp, "--output", out,
                        "--classes", ",".join("c%d" % i for i in range(10))], check=True, stdout=subprocess.DEVNULL)
        put("h5_dataset", name + ".h5", open(out, "rb").read())

# TOML configs: the examples, and one with overrides after NUL bytes.
for name in ("fashion_mlp", "fashion_dcgan"):
    put("config", name, open(os.path.join(here, "..", "..", "examples", name + ".toml"), "rb").read())
put("config", "overrides", b'[run]\nepochs = 3\n[optimizer]\nlr = 1e-3\nbetas = [0.9, 0.99]\n'
                           b'\x00optimizer.lr=0.5\x00model.hidden=[1,2]\x00data.path=x.h5\x00run.deterministic=true')
