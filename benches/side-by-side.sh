#!/usr/bin/env bash
# Whole commands side by side with hyperfine, one invocation per row, each against what it is
# compared with: a strata start against crun's, `strata --version` against /bin/true, copy
# mounts against `cp -a` of the same tree, btrfs and fuse-overlayfs starts against overlay's.
# Prints a Markdown table; hyperfine's JSON for every row goes to OUT (default
# side-by-side-out). Everything happens on a tmpfs in a private mount namespace of its own,
# which takes every mount with it when the script ends, also when it fails.
#
#   benches/side-by-side.sh [OUT]      (root; STRATA=path/to/strata, default target/release)
#
# Needs: hyperfine, crun, python3, mkfs.btrfs, fuse-overlayfs (ci/provision.sh installs them),
# and the Debian minbase tar the container_start benchmark caches (/var/cache/strata).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ "${STRATA_SIDE_BY_SIDE_INNER:-}" != 1 ]; then
  out=$(realpath -m "${1:-side-by-side-out}")
  mkdir -p "$out"
  exec env STRATA_SIDE_BY_SIDE_INNER=1 unshare --mount --propagation private "$0" "$out"
fi
out=$1
strata=${STRATA:-$here/target/release/strata}
runs=${RUNS:-100}
debian_tar=${DEBIAN_TAR:-/var/cache/strata/debian-minbase-bookworm-amd64.tar}
for tool in hyperfine crun python3 mkfs.btrfs fuse-overlayfs; do
  command -v "$tool" >/dev/null || { echo "side-by-side: $tool is not installed" >&2; exit 1; }
done
[ -x "$strata" ] || { echo "side-by-side: no strata binary at $strata (cargo build --release)" >&2; exit 1; }
[ -f "$debian_tar" ] || { echo "side-by-side: no $debian_tar (run the container_start benchmark once)" >&2; exit 1; }

w=$(mktemp -d /tmp/strata-side-by-side-XXXXXX)
trap 'cd /; umount -R "$w" 2>/dev/null; rm -rf "$w"' EXIT
mount -t tmpfs -o size=12g side-by-side "$w"
# crun refuses a v1/v2 hybrid whose unified hierarchy offers controllers: hide it here.
if [ -e /sys/fs/cgroup/unified/cgroup.controllers ]; then umount -l /sys/fs/cgroup/unified; fi
s() { "$strata" --root "$w/store" "$@"; }
median() { python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"]; print(" ".join("%.3f" % (x["median"]*1000) for x in r))' "$1"; }
row() { # row NAME JSON WHAT
  read -r a b <<<"$(median "$2")"
  printf '| %s | %s ms | %s ms | %.2f |\n' "$1" "$a" "$b" "$(python3 -c "print($a/$b)")" >>"$out/table.md"
}
hf() { hyperfine -N --style basic --warmup 5 "$@"; }
printf '| what | subject (median) | compared with (median) | ratio |\n|---|---:|---:|---:|\n' >"$out/table.md"

# 1. A start of /bin/true: strata (overlay, mount+uts+ipc+pid, pivot_root) against crun on
# the same rootfs with the same namespaces.
"$strata" rootfs from-host --out "$w/rootfs" --tar "$w/true.tar" /bin/true >/dev/null
true_layer=$(s layer import "$w/true.tar")
mkdir -p "$w/crun"
(cd "$w/crun" && crun spec)
python3 - "$w/crun/config.json" "$w/rootfs" <<'EOF'
import json, sys
p, root = sys.argv[1], sys.argv[2]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c["root"] = {"path": root, "readonly": True}
keep = {"pid", "ipc", "uts", "mount"}
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] in keep]
json.dump(c, open(p, "w"))
EOF
hf --runs "$runs" --export-json "$out/start.json" \
  -n "strata run" "$strata --root $w/store run --ns mount,uts,ipc,pid $true_layer -- /bin/true" \
  -n "crun run" "crun run --bundle $w/crun side-by-side"
row 'start of /bin/true: `strata run` / `crun run`' "$out/start.json"

# 2. What every strata command pays before its work.
hf --runs $((runs * 3)) --export-json "$out/process.json" \
  -n "strata --version" "$strata --version" -n "/bin/true" "/bin/true"
row '`strata --version` / `/bin/true`' "$out/process.json"

# 3. The copy driver's mount of the Debian tree against `cp -a` of the same tree.
debian=$(s layer import "$debian_tar")
src=$w/store/layers/sha256/${debian#sha256:}/fs
[ -d "$src" ] || { echo "side-by-side: no layer directory $src" >&2; exit 1; }
hf --runs "${COPY_RUNS:-15}" --export-json "$out/copy.json" \
  --prepare "sh -c '$strata --root $w/store umount $w/t >/dev/null 2>&1; rm -rf $w/t $w/cp; mkdir $w/t'" \
  -n "strata mount --driver copy" "$strata --root $w/store mount --driver copy $debian $w/t" \
  -n "cp -a" "cp -a $src $w/cp"
s umount "$w/t" >/dev/null 2>&1 || true
rm -rf "$w/t" "$w/cp"
row "copy mount of the Debian tree ($(du -sh --apparent-size "$src" | cut -f1), $(find "$src" | wc -l) entries) / \`cp -a\`" "$out/copy.json"

# 4. 500 layers, each adding 20 files and rewriting one 1 MiB file, mounted by the copy
# driver, against `cp -a` of the merged tree.
python3 - "$w/deep" 500 <<'EOF'
import io, os, sys, tarfile
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(out)
big = bytearray(1 << 20)
for i in range(n):
    with tarfile.open(os.path.join(out, "%03d.tar" % i), "w") as t:
        d = tarfile.TarInfo("l%03d" % i); d.type = tarfile.DIRTYPE; d.mode = 0o755
        t.addfile(d)
        for j in range(20):
            data = b"layer %d file %d\n" % (i, j)
            f = tarfile.TarInfo("l%03d/f%02d" % (i, j)); f.size = len(data); f.mode = 0o644
            t.addfile(f, io.BytesIO(data))
        big[:8] = i.to_bytes(8, "little")
        f = tarfile.TarInfo("big"); f.size = len(big); f.mode = 0o644
        t.addfile(f, io.BytesIO(bytes(big)))
EOF
layers=()
for t in "$w"/deep/*.tar; do layers+=("$(s layer import "$t")"); done
mkdir "$w/merged"
s mount --driver copy "${layers[@]}" "$w/merged" >/dev/null
cp -a "$w/merged" "$w/merged-tree"
s umount "$w/merged" >/dev/null
hf --runs "${COPY_RUNS:-10}" --export-json "$out/deep.json" \
  --prepare "sh -c '$strata --root $w/store umount $w/t >/dev/null 2>&1; rm -rf $w/t $w/cp; mkdir $w/t'" \
  -n "strata mount --driver copy (500 layers)" "$strata --root $w/store mount --driver copy ${layers[*]} $w/t" \
  -n "cp -a of the merged tree" "cp -a $w/merged-tree $w/cp"
s umount "$w/t" >/dev/null 2>&1 || true
rm -rf "$w/t" "$w/cp" "$w/merged-tree"
row 'copy mount of 500 layers / `cp -a` of the merged tree' "$out/deep.json"

# 5. A start of the Debian image's /bin/true on btrfs (a loop btrfs holds that store) and on
# fuse-overlayfs, against overlay.
truncate -s 4g "$w/btrfs.img"
mkfs.btrfs -q "$w/btrfs.img"
mkdir -p "$w/btrfs"
# mount sets up the loop device to detach itself at unmount.
mount -o loop "$w/btrfs.img" "$w/btrfs"
"$strata" --root "$w/btrfs/store" layer import "$debian_tar" >/dev/null
start() { echo "$strata --root $1 run --driver $2 --ns mount,uts,ipc,pid $debian -- /bin/true"; }
hf --runs "$runs" --export-json "$out/drivers.json" \
  -n btrfs "$(start "$w/btrfs/store" btrfs)" \
  -n fuse-overlayfs "$(start "$w/store" fuse-overlayfs)" \
  -n overlay "$(start "$w/store" overlay)"
python3 - "$out/drivers.json" >>"$out/table.md" <<'EOF'
import json, sys
r = {x["command"]: x["median"] * 1000 for x in json.load(open(sys.argv[1]))["results"]}
for d in ("btrfs", "fuse-overlayfs"):
    print("| Debian image start: `strata run --driver %s` / overlay | %.3f ms | %.3f ms | %.2f |" % (d, r[d], r["overlay"], r[d] / r["overlay"]))
EOF
umount "$w/btrfs"

cat "$out/table.md"
