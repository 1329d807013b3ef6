#!/usr/bin/env bash
# `data import --from csv|libsvm|npy`: round trips (plain and gzip'd) against NumPy, malformed
# input named by line or byte offset with exit 3 and nothing left behind (an earlier good output
# survives), and a large gzip'd CSV imported in bounded memory.
source "$(dirname "$0")/lib.sh"
# Imports run on one process: start them without mpirun (seconds saved per case).
tess() {
  shift
  timeout 240 "$TESSERA" "$@"
}

/usr/bin/python3 - <<'PY'
import gzip, numpy as np
rng = np.random.default_rng(1)
X = rng.normal(size=(3000, 6)).astype(np.float32)
y = rng.integers(0, 4, 3000)
np.save("x.npy", X); np.save("y.npy", y)
np.save("x64.npy", X.astype(np.float64)); np.save("yreg.npy", rng.normal(size=(3000, 2)))
np.save("xi.npy", (X * 10).astype(np.int16))
with open("x.npy", "rb") as a, gzip.open("x.npy.gz", "wb") as b: b.write(a.read())
def csv_lines(label_at):
    for i in range(3000):
        f = [repr(float(v)) for v in X[i]]
        f.insert(label_at, str(y[i]))
        yield ",".join(f) + "\n"
with open("h.csv", "w") as f:
    f.write("f0,f1,label,f2,f3,f4,f5\n"); f.writelines(csv_lines(2))
with gzip.open("n.csv.gz", "wt") as f:
    f.writelines(csv_lines(6))
with gzip.open("t.svm.gz", "wt") as f:
    for i in range(3000):
        f.write("%d %s\n" % (y[i], " ".join("%d:%r" % (j + 1, float(X[i, j])) for j in range(6) if X[i, j] > 0)))
PY
"$TESSERA" data import --from csv h.csv --header --label label --out h.h5 >/dev/null
"$TESSERA" data import --from csv n.csv.gz --out n.h5 >/dev/null
"$TESSERA" data import --from csv h.csv --header --label 2 --out h2.h5 >/dev/null
"$TESSERA" data import --from libsvm t.svm.gz --features 6 --out s.h5 >/dev/null
"$TESSERA" data import --from npy x.npy.gz y.npy --out n1.h5 >/dev/null
"$TESSERA" data import --from npy x64.npy yreg.npy --out n2.h5 >/dev/null
"$TESSERA" data import --from npy xi.npy y.npy --out n3.h5 >/dev/null
/usr/bin/python3 - <<'PY'
import h5py, numpy as np
X, y = np.load("x.npy"), np.load("y.npy")
def check(name, x, yy, ydtype):
    f = h5py.File(name)
    assert f["X"].dtype == np.float32 and f["y"].dtype == ydtype, (name, f["X"].dtype, f["y"].dtype)
    assert np.array_equal(f["X"][()], x), name
    assert np.array_equal(f["y"][()], yy), name
    assert f["X"].chunks[1] == x.shape[1], name  # chunks of whole rows
for n in ("h.h5", "n.h5", "h2.h5"):
    check(n, X, y, np.float64)
check("s.h5", np.where(X > 0, X, 0), y, np.float64)
check("n1.h5", X, y, np.int64)
check("n2.h5", X, np.load("yreg.npy"), np.float64)
check("n3.h5", (X * 10).astype(np.int16).astype(np.float32), y, np.int64)
print("ok: csv (header, label by name and index, gzip), libsvm (gzip), npy (gzip, float64, int16, 2-D y)")
PY
# The imported file trains.
write_config t.toml h.h5
tess 1 train t.toml --quiet >/dev/null || fail "training on an imported csv failed"  # one process

# Malformed input: exit 3 naming the line / byte offset; out.h5 (a good earlier file) survives.
cp h.h5 out.h5
printf 'a,b,c\n1,2,3\n4,5\n' >short.csv
printf '1,2,3\n4,x,6\n' >nan.csv
printf '1 1:0.5 7:1\n' >idx.svm
printf '1 2:0.5 1:1\n' >order.svm
printf '0 1:0.5\n1 2:oops\n' >val.svm
printf 'not an npy file' >bad.npy
head -c 200 x.npy >trunc.npy
/usr/bin/python3 -c "import numpy as np; np.save('big.npy', np.zeros((4, 2), dtype='>f4')); np.save('y4.npy', np.arange(4))"
expect_exit 3 "short.csv line 3: 2 fields, expected 3" 1 data import --from csv short.csv --header --out out.h5
expect_exit 3 "nan.csv line 2, column 1: 'x' is not a number" 1 data import --from csv nan.csv --out out.h5
expect_exit 3 "idx.svm line 1: feature index 7 outside 1..6" 1 data import --from libsvm idx.svm --features 6 --out out.h5
expect_exit 3 "order.svm line 1: feature index 1 after 2" 1 data import --from libsvm order.svm --features 6 --out out.h5
expect_exit 3 "val.svm line 2, feature 2: 'oops' is not a number" 1 data import --from libsvm val.svm --features 6 --out out.h5
expect_exit 3 "bad.npy byte 0: not an NPY file" 1 data import --from npy bad.npy y.npy --out out.h5
expect_exit 3 "trunc.npy byte 200: file ends early" 1 data import --from npy trunc.npy y.npy --out out.h5
expect_exit 3 "dtype '>f4' not supported" 1 data import --from npy big.npy y.npy --out out.h5
expect_exit 3 "x.npy has 3000 rows but y4.npy has 4" 1 data import --from npy x.npy y4.npy --out out.h5
expect_exit 2 "--label nope: no such column" 1 data import --from csv h.csv --header --label nope --out out.h5
expect_exit 2 "needs --features D" 1 data import --from libsvm idx.svm --out out.h5
expect_exit 2 "--raw does not apply to --from csv" 1 data import --from csv h.csv --raw --out out.h5
cmp out.h5 h.h5 || fail "a failed import replaced out.h5"
ls -a | grep -q '\.tmp\.' && fail "a failed import left a temp file"
echo "ok: malformed input named; nothing half-written"

# A large gzip'd CSV (1,000 distinct lines repeated: 250,000 rows x 33 columns, ~73 MB
# uncompressed) imports with a peak RSS far below its size.
/usr/bin/python3 - <<'PY'
import gzip, numpy as np
rng = np.random.default_rng(2)
block = "".join(",".join("%.6f" % v for v in row) + ",%d\n" % (i % 10)
                for i, row in enumerate(rng.normal(size=(1000, 32))))
with gzip.open("large.csv.gz", "wt", compresslevel=1) as f:
    for _ in range(250):
        f.write(block)
print("uncompressed MiB:", len(block) * 250 / 2**20)
PY
/usr/bin/time -f "%M" -o rss.txt "$TESSERA" data import --from csv large.csv.gz --out large.h5 >/dev/null
rss_kb=$(tail -1 rss.txt)
/usr/bin/python3 -c 'import h5py; f = h5py.File("large.h5"); assert f["X"].shape == (250000, 32), f["X"].shape'
(( rss_kb < 40 * 1024 )) || fail "import of a ~73 MB CSV peaked at $rss_kb KiB"
echo "ok: 250,000-row gzip'd CSV imported with peak RSS $((rss_kb / 1024)) MiB"
