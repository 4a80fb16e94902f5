#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages strata's tests, benchmarks and suite use, and loads the
# kernel modules its drivers need. Idempotent: when everything is present it only checks
# (well under a second). A package the distribution does not have is reported and skipped:
# the tests and the suite then say what they skip and why -- and .ci/run, whose STRATA_REQUIRE
# names everything installed here, fails on each such skip instead of passing without it.
set -euo pipefail

packages=(
  tar gzip zstd          # layer fixtures made with the system tar (sparse files)
  crun runc              # peers in the container_start benchmark
  fuse-overlayfs fuse3   # the fuse-overlayfs driver
  btrfs-progs xfsprogs   # loop-mounted btrfs/xfs for the btrfs driver and reflink copies
  umoci skopeo           # real OCI images in the image tests
  docker-registry        # a local registry for `strata image push`
  busybox-static         # a small static rootfs for runtime tests and the busybox image of container_start
  debootstrap            # the Debian minbase image of container_start (built once, cached)
  chromium               # the report page test (headless)
  hyperfine              # whole-command timings in the closing notes
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "provision: missing ${missing[*]}; run as root to install them" >&2
    exit 1
  fi
  echo "provision: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  available=()
  for p in "${missing[@]}"; do
    if apt-cache show "$p" >/dev/null 2>&1; then available+=("$p"); else echo "provision: $p is not in this distribution's archive; skipping it"; fi
  done
  [ ${#available[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${available[@]}" >/dev/null
fi

# The drivers' filesystems and loop devices for the btrfs/xfs images the harness makes.
if [ "$(id -u)" -eq 0 ]; then
  for m in overlay loop btrfs xfs fuse; do
    grep -qw "$m" /proc/filesystems /proc/modules 2>/dev/null || modprobe "$m" 2>/dev/null || true
  done
fi
[ -e /dev/loop-control ] || echo "provision: no /dev/loop-control: btrfs and reflink benchmarks will be skipped"
echo "provision: ${#packages[@]} packages checked"
