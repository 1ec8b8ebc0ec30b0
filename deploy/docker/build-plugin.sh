#!/usr/bin/env bash
# Builds Ballast's Docker managed plugin and registers it with
# `docker plugin create`:
#
#   deploy/docker/build-plugin.sh [VERSION]      # as root, Docker running
#   docker plugin enable ballast/ballast:VERSION
#   docker volume create -d ballast/ballast:VERSION --opt size=10G --opt repl=2 pgdata
#
# The rootfs is built from scratch, without a base image:
#   /ballast   the daemon, a static Go binary (CGO_ENABLED=0);
#   the tools the daemon runs (k8s.io/mount-utils formats and mounts with
#   them): mount, umount, blkid, fsck, fsck.ext4/e2fsck, mkfs.ext4/mke2fs,
#   mkfs.xfs, resize2fs and xfs_growfs (volumes that grew), fsck.xfs (a
#   shell script, hence sh), and fusermount3 when the host has it (only a
#   fallback: the daemon mounts FUSE itself). These are
#   not static: the script copies the build host's binaries together with
#   the shared libraries and loader `ldd` lists, so the rootfs is
#   self-contained but has the build host's architecture. Install them on
#   the build host first (deploy/install-deps.sh). Loop devices are set up
#   with ioctls, so losetup is not needed.
#
# On every host that enables the plugin: `mkdir -p /var/lib/ballast` (the
# state mount's source must exist; `docker plugin set ballast/ballast:VERSION
# state.source=DIR` moves it) and the loop and fuse kernel modules.
# Volumes are mounted under the plugin's propagated mount (/mnt/ballast in
# the plugin, see config.json); the CLI reaches the daemon with
# BALLAST_SOCKET=/var/lib/ballast/ballast.sock. Cluster flags go in the
# plugin's args: docker plugin set ballast/ballast:VERSION args="--listen ...".
#
# Privileges (config.json): CAP_SYS_ADMIN, for mount(2) (the FUSE files,
# the volumes' filesystems) and freezing them; CAP_MKNOD, in Docker's
# default set, lets the daemon make a loop node /dev lacks. The host's /dev
# is bound in, so the loop devices the kernel adds on demand show up;
# allowAllDevices, because those loop devices (block major 7) get new minors
# as they are added and a plugin's config can only allow the device nodes
# that exist when it is enabled, or all of them. /dev/fuse and
# /dev/loop-control are listed so that enabling fails at once where the
# modules are missing. Not CAP_SYS_RESOURCE: ext4 then cannot grow while
# mounted; a volume resized while attached grows its ext4 at the next attach
# (xfs grows online).
#
# Environment: PLUGIN (name, default ballast/ballast), BALLAST_BIN (use this
# static binary instead of building one), OUT (build the plugin directory
# there and stop before `docker plugin create`).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=${1:-$(git -C "$repo" describe --tags --always --dirty 2>/dev/null || echo dev)}
plugin=${PLUGIN:-ballast/ballast}

if [ -n "${OUT:-}" ]; then
	dir=$OUT
	rm -rf "$dir"
	mkdir -p "$dir"
else
	dir=$(mktemp -d)
	trap 'rm -rf "$dir"' EXIT
fi
rootfs=$dir/rootfs
mkdir -p "$rootfs"/{etc,tmp,proc,sys,dev,mnt/ballast,var/lib/ballast,run/docker/plugins,run/mount}
chmod 1777 "$rootfs/tmp"

# The daemon.
if [ -n "${BALLAST_BIN:-}" ]; then
	install -m 0755 "$BALLAST_BIN" "$rootfs/ballast"
else
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath \
		-ldflags "-s -w -X github.com/ballast-io/ballast/pool/version.Version=$version" \
		-o "$rootfs/ballast" ./cmd/ballast)
fi
if ldd "$rootfs/ballast" >/dev/null 2>&1; then
	echo "build-plugin: $rootfs/ballast is dynamically linked; build it with CGO_ENABLED=0" >&2
	exit 1
fi

# copy_file PATH: copies PATH (following symlinks) to the same path in the
# rootfs.
copy_file() {
	[ -e "$rootfs$1" ] && return
	mkdir -p "$rootfs$(dirname "$1")"
	cp -L "$1" "$rootfs$1"
}

# copy_tool NAME: copies a tool from the host, under the path it has there
# (mkfs.ext4 keeps its name: mke2fs picks the filesystem by it), with the
# shared libraries and loader it needs.
copy_tool() {
	local path lib
	path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$1") || return 1
	copy_file "$path"
	for lib in $(ldd "$path" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
		copy_file "$lib"
	done
}

for tool in mount umount blkid fsck e2fsck fsck.ext4 mke2fs mkfs.ext4 resize2fs mkfs.xfs xfs_growfs sh; do
	copy_tool "$tool" || { echo "build-plugin: $tool is missing on this host; run deploy/install-deps.sh" >&2; exit 1; }
done
for tool in fsck.xfs fusermount3; do
	copy_tool "$tool" || echo "build-plugin: note: no $tool on this host; the plugin goes without it" >&2
done
[ -e /etc/mke2fs.conf ] && copy_file /etc/mke2fs.conf
ln -sfn /proc/self/mounts "$rootfs/etc/mtab" # e2fsprogs and mount look for it
[ -e "$rootfs/bin/sh" ] || { mkdir -p "$rootfs/bin"; ln -s "$(PATH=/usr/bin:/bin command -v sh)" "$rootfs/bin/sh"; }

# Every copied tool must start inside the rootfs (the loader exits 127 when
# a library is missing). Needs root for chroot; skipped otherwise.
if [ "$(id -u)" -eq 0 ]; then
	for bin in $(find "$rootfs" -type f -perm -u+x ! -name '*.so*' ! -name 'ld-linux*' ! -path "$rootfs/ballast"); do
		rc=0
		chroot "$rootfs" "${bin#"$rootfs"}" --version >/dev/null 2>&1 || rc=$?
		if [ "$rc" -eq 127 ]; then
			echo "build-plugin: ${bin#"$rootfs"} does not run inside the rootfs" >&2
			exit 1
		fi
	done
fi

cp "$here/config.json" "$dir/config.json"
if [ -n "${OUT:-}" ]; then
	echo "plugin directory ready in $dir; create it with: docker plugin create $plugin:$version $dir"
	exit 0
fi
docker plugin create "$plugin:$version" "$dir"
echo "created $plugin:$version; enable it with: docker plugin enable $plugin:$version"
