#!/bin/bash
# Packs this machine's PostgreSQL server (Debian's `postgresql` package) and the psycopg wheels into
# .device/pg/, for a machine without them (the GPU machine: no package registry, no database
# server), so that experiments/bench_workers.py can measure many tune processes on one PostgreSQL
# study on a host with enough cores (issue 5's storage target).
#
#   bash experiments/pg_bundle.sh        # here, from the project's root: writes .device/pg/ (~20 MB)
#   bash .device/pg/install.sh           # there, in the device call that carries .device/pg
#
# install.sh unpacks the server under /tmp/pg (the Debian layout, which PostgreSQL finds its share
# and lib folders from), the shared libraries it needs beyond glibc under /tmp/pg/libs, and psycopg
# into /tmp/site; it prints the two variables tests/pg_server.py reads (TUNER_PG_BIN, TUNER_PG_LIB).
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || { echo "error: no PostgreSQL here: apt-get install postgresql" >&2; exit 2; }
ver=$(basename "$(dirname "$bin")")
out=.device/pg; stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
rm -rf "$out"; mkdir -p "$out" "$stage/usr/lib/postgresql/$ver/bin" "$stage/usr/share/postgresql" "$stage/libs"
for b in postgres initdb pg_ctl createdb; do cp -a "$bin/$b" "$stage/usr/lib/postgresql/$ver/bin/"; done
# Server modules, without the LLVM JIT's bitcode (26 MB; JIT stays off: no llvmjit.so either).
cp -a "/usr/lib/postgresql/$ver/lib" "$stage/usr/lib/postgresql/$ver/"
rm -rf "$stage/usr/lib/postgresql/$ver/lib/bitcode" "$stage/usr/lib/postgresql/$ver/lib/"llvmjit*
cp -a "/usr/share/postgresql/$ver" "$stage/usr/share/postgresql/"
# Shared libraries beyond glibc (which the other machine has, newer): ICU, libxml2, OpenSSL, Kerberos...
ldd "$bin"/{postgres,initdb,pg_ctl,createdb} | awk '/=>/ {print $3}' | sort -u \
  | grep -Ev '/(libc|libm|libresolv|libpthread|libdl|librt|ld-linux[^/]*)\.so' \
  | while read -r lib; do cp -L "$lib" "$stage/libs/"; done
tar -C "$stage" -cJf "$out/pg.tar.xz" usr libs
python3 -m pip download -q --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$out" "psycopg==3.3.9" "psycopg-binary==3.3.9"
cat > "$out/install.sh" <<EOF
#!/bin/bash
# Unpacks PostgreSQL $ver under /tmp/pg and psycopg into /tmp/site (idempotent).
set -e
D=\$(cd "\$(dirname "\$0")" && pwd)
mkdir -p /tmp/pg /tmp/site && tar -xJf "\$D/pg.tar.xz" -C /tmp/pg && chmod -R a+rX /tmp/pg
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "\$D"/*.whl
echo "PostgreSQL $ver unpacked: export TUNER_PG_BIN=/tmp/pg/usr/lib/postgresql/$ver/bin TUNER_PG_LIB=/tmp/pg/libs"
EOF
du -sh "$out"; ls -la "$out"
