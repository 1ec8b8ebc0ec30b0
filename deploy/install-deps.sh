#!/usr/bin/env bash
# Installs the Debian packages Ballast's daemon and tests use, when missing:
# fio (tests, benchmarks), e2fsprogs and xfsprogs (mkfs, fsck), fuse3
# (fusermount3), util-linux (losetup, mount, nsenter), etcd-server (tests
# against an external etcd), iproute2 and iptables (the network-partition
# test), busybox-static (the Docker tests build their container image from
# its static /bin/busybox), debootstrap (the demo's Swarm node image), and
# versitygw (the S3 server the backup tests run against; built with go
# install into /usr/local/bin, as Debian does not package it). With
# --bench also what `make bench` compares against: glusterfs-server (the
# GlusterFS replica 2 peer) and postgresql (pgbench). Safe to run again;
# --always installs even when every tool is found.
set -euo pipefail
always= bench=
for arg in "$@"; do
	case $arg in
	--always) always=1 ;;
	--bench) bench=1 ;;
	*) echo "install-deps: unknown argument $arg (--always, --bench)" >&2; exit 2 ;;
	esac
done
extra=()
if [ -n "$bench" ]; then
	extra=(glusterfs-server glusterfs-client postgresql)
fi
need=()
for pair in etcd:etcd-server fio:fio mkfs.ext4:e2fsprogs e2fsck:e2fsprogs mkfs.xfs:xfsprogs fusermount3:fuse3 losetup:util-linux nsenter:util-linux ip:iproute2 iptables:iptables busybox:busybox-static debootstrap:debootstrap; do
	tool=${pair%%:*} pkg=${pair##*:}
	command -v "$tool" >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin command -v "$tool" >/dev/null 2>&1 || need+=("$pkg")
done
if [ -n "$bench" ]; then
	for pair in glusterd:glusterfs-server mount.glusterfs:glusterfs-client; do
		tool=${pair%%:*} pkg=${pair##*:}
		PATH=$PATH:/sbin:/usr/sbin command -v "$tool" >/dev/null 2>&1 || need+=("$pkg")
	done
	compgen -G '/usr/lib/postgresql/*/bin/pgbench' >/dev/null || need+=(postgresql)
fi
versitygw_version=v1.8.0
install_versitygw() {
	if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
		PATH=$PATH:/usr/local/go/bin
	fi
	echo "install-deps: building versitygw $versitygw_version into /usr/local/bin"
	GOBIN=/usr/local/bin go install "github.com/versity/versitygw/cmd/versitygw@$versitygw_version"
}
if ! command -v versitygw >/dev/null 2>&1 || [ -n "$always" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "install-deps: need root to install versitygw into /usr/local/bin" >&2
		exit 1
	fi
	install_versitygw
fi
if [ ${#need[@]} -eq 0 ] && [ -z "$always" ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: need root to install: ${need[*]:-fio e2fsprogs xfsprogs fuse3}" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends fio e2fsprogs xfsprogs fuse3 util-linux etcd-server iproute2 iptables busybox-static debootstrap "${extra[@]}"
