#!/usr/bin/env bash
# Makes the local stand-in for the Lambda base image (no registry is reachable, so nothing
# can be pulled): a minimal root file system with a shell, `mv` and `chmod` (what the SAM
# CLI's image build runs), /tmp, and the C library and loader the function binaries link,
# and the CA certificates (the AWS SDK's TLS refuses to start without them), imported
# with `docker import`. SAM adds its Runtime Interface Emulator on top itself.
# Usage: scripts/lambda-base-image.sh DIR-WITH-BOOTSTRAPS  → prints the image tag.
# Cached: the tag is a hash of what went in, so a second run takes well under a second.
set -euo pipefail
artifacts=${1:?usage: lambda-base-image.sh DIR}

static_busybox() { [ -x "$1" ] && [[ $(ldd "$1" 2>&1 || true) == *"not a dynamic"* ]]; }
busybox=/bin/busybox
if ! static_busybox "$busybox"; then
  . "$(dirname "$0")/lib/apt.sh"
  apt_install "the local Lambda base image (a static shell and coreutils)" 5 busybox-static || true
  static_busybox "$busybox" || { echo "lambda-base-image: needs a static busybox (apt-get install busybox-static)" >&2; exit 1; }
fi

# The shared libraries every bootstrap needs (ldd's resolved paths, loader included).
mapfile -t libs < <( (find "$artifacts" -name bootstrap -type f -exec ldd {} \; 2>/dev/null || true) \
  | grep -oE '/[^ ]+\.so[^ ]*' | sort -u)
[ ${#libs[@]} -gt 0 ] || { echo "lambda-base-image: no dynamically linked bootstrap under $artifacts" >&2; exit 1; }

certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || { echo "lambda-base-image: $certs is missing (apt-get install ca-certificates)" >&2; exit 1; }

hash=$( { sha256sum "$busybox" "${libs[@]}" "$certs" "$0"; uname -m; } | sha256sum | cut -c1-12)
tag="bookshelf/lambda-base:$hash"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

# SAM keeps its emulation image (this repository, tag rapid-<arch>) and reuses it even when
# the base under it changed: drop it with the old base.
docker images bookshelf/lambda-base --format '{{.Repository}}:{{.Tag}}' | grep ':rapid-' \
  | xargs -r docker rmi -f >/dev/null 2>&1 || true

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/var/task" "$root/var/runtime" "$root/etc"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in sh mv chmod cp rm mkdir ls cat env; do ln -s busybox "$root/bin/$applet"; done
for lib in "${libs[@]}"; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
# Where Debian's and Amazon Linux's TLS stacks look for them.
mkdir -p "$root/etc/ssl/certs" "$root/etc/pki/tls/certs"
cp -L "$certs" "$root/etc/ssl/certs/ca-certificates.crt"
cp -L "$certs" "$root/etc/pki/tls/certs/ca-bundle.crt"
echo "root:x:0:0:root:/tmp:/bin/sh" > "$root/etc/passwd"
echo "nobody:x:65534:65534:nobody:/tmp:/bin/sh" >> "$root/etc/passwd"
tar -C "$root" -c . | docker import --change 'ENV PATH=/bin' --change 'WORKDIR /var/task' - "$tag" >/dev/null
docker tag "$tag" bookshelf/lambda-base:latest
echo "$tag"
