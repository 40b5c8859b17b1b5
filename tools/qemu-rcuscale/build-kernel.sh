#!/usr/bin/env bash
# Build the calibration kernel of ../shared/calibration/linux-6.1-qemu-tcg/ (NOTES.md) here:
# Debian's linux-source-6.1 (6.1.192), the calibration .config, an initramfs whose /init sleeps.
# Usage: tools/qemu-rcuscale/build-kernel.sh BUILD_DIR [--ring]
#   --ring also applies kvsim-ring.patch (events of kernel/rcu/tree.c into a ring read by run.py --ring).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
calib="$here/../../../shared/calibration/linux-6.1-qemu-tcg"
out="${1:?usage: build-kernel.sh BUILD_DIR [--ring]}"
apt-get install -y -q linux-source-6.1 qemu-system-x86 bc flex bison libelf-dev libssl-dev cpio >/dev/null
mkdir -p "$out"
[ -d "$out/linux-source-6.1" ] || tar -C "$out" -xf /usr/src/linux-source-6.1.tar.xz
cd "$out/linux-source-6.1"
mkdir -p initramfs
printf '#include <unistd.h>\nint main(void) { for (;;) pause(); }\n' > initramfs/init.c
gcc -static -O2 -o initramfs/init initramfs/init.c
printf 'dir /dev 0755 0 0\nnod /dev/console 0600 0 0 c 5 1\nfile /init initramfs/init 0755 0 0\n' > initramfs/list.txt
cp "$calib/config-6.1.192-rcuscale-tiny" .config
make olddefconfig >/dev/null
if [ "${2:-}" = "--ring" ]; then
    patch -p0 --forward < "$here/kvsim-ring.patch" || true
fi
make -j"$(nproc)" bzImage >/dev/null
echo "$PWD/arch/x86/boot/bzImage ($(make -s kernelversion)); symbols in $PWD/System.map"
