#!/usr/bin/env bash
# Installs the Debian packages strata's tests, benches and suite use. Idempotent: when every
# package is present it only checks (well under a second) and installs nothing.
set -euo pipefail

packages=(
  tar gzip zstd          # layer fixtures made with the system tar (sparse files)
  crun runc              # peers in the container_start benchmark
  fuse-overlayfs fuse3   # the fuse-overlayfs driver
  btrfs-progs xfsprogs   # loop-mounted btrfs/xfs for the btrfs driver and reflink copies
  umoci skopeo           # real OCI images in the image tests
  docker-registry        # a local registry for `strata image push`
  busybox-static         # a small static rootfs for runtime tests
  chromium               # the report page test (headless)
  hyperfine              # whole-command timings in the closing notes
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "provision: all ${#packages[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "provision: missing ${missing[*]}; run as root to install them" >&2
  exit 1
fi

echo "provision: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "provision: done"
