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
  strace                 # the store's fault injection (SIGKILL at the Nth call of a syscall)
  qemu-system-x86 kmod   # the kernel matrix: microVMs (virtme-ng), depmod/modprobe of their modules
  python3-venv           # virtme-ng in a venv of its own
  libcap-ng-dev libseccomp-dev pkg-config   # to build virtiofsd (the Rust one)
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
# The kernel matrix (`strata check --kernel`): virtme-ng boots other kernels in microVMs whose
# root is this machine's filesystem. Everything lands in /opt/strata-vm except two small things
# the guest's init looks for on the shared root: /lib/modules (where it links the booted
# kernel's modules) and a udevd (it needs the /dev/virtio-ports/NAME links udev makes; where
# the machine has no udev, a shim that only makes those links).
vm=/opt/strata-vm
if [ "$(id -u)" -eq 0 ]; then
  if [ "$("$vm/venv/bin/vng" --version 2>/dev/null | awk '{print $NF}')" != "1.42" ]; then
    echo "provision: installing virtme-ng 1.42 in $vm/venv"
    python3 -m venv "$vm/venv" && "$vm/venv/bin/pip" install -q "virtme-ng==1.42" \
      || echo "provision: virtme-ng could not be installed: strata check --kernel will say so"
  fi
  if ! "$vm/bin/virtiofsd" --version 2>/dev/null | grep -q ' 1\.14'; then
    if command -v cargo >/dev/null; then
      echo "provision: building virtiofsd 1.14 (about 2 minutes) into $vm/bin"
      build=$(mktemp -d)
      CARGO_TARGET_DIR="$build" cargo install -q virtiofsd --version 1.14.0 --locked --root "$vm" \
        || echo "provision: virtiofsd could not be built: strata check --kernel will say so"
      rm -rf "$build" "$vm/.crates.toml" "$vm/.crates2.json"
    else
      echo "provision: no cargo to build virtiofsd with: strata check --kernel will say so"
    fi
  fi
  mkdir -p /lib/modules
  if [ ! -e /lib/systemd/systemd-udevd ] && [ ! -e /usr/lib/systemd/systemd-udevd ] \
     && ! grep -qs 'strata: stands in for udev' /usr/local/bin/udevd; then
    if [ -e /usr/local/bin/udevd ]; then
      echo "provision: /usr/local/bin/udevd exists and is not strata's shim: left alone"
    else
      cat > /usr/local/bin/udevd <<'SHIM'
#!/bin/sh
# strata: stands in for udev in virtme-ng guests (installed by strata's ci/provision.sh on a
# machine without udev). virtme-ng-init finds its console ports by the /dev/virtio-ports/NAME
# links udev would make; this makes them and exits.
mkdir -p /dev/virtio-ports
for p in /sys/class/virtio-ports/*; do
  [ -r "$p/name" ] || continue
  ln -sf "../$(basename "$p")" "/dev/virtio-ports/$(cat "$p/name")"
done
SHIM
      chmod 755 /usr/local/bin/udevd
    fi
  fi
fi

[ -e /dev/loop-control ] || echo "provision: no /dev/loop-control: btrfs and reflink benchmarks will be skipped"
echo "provision: ${#packages[@]} packages checked"
