package demo

import "strconv"

// entrypointScript starts a node: it makes the container able to run
// Docker and Ballast, starts the Ballast daemon under a small supervisor
// (restarted when it exits, until STOP exists), starts dockerd, and once
// both are up runs `docker volume ls`, so that dockerd has loaded the
// ballast plugin and Swarm schedules tasks that mount its volumes, and
// marks the node READY. The node's identity comes from the environment
// (see nodeEnv). Logs: /var/log/ballast.log, /var/log/dockerd.log.
var entrypointScript = `#!/bin/sh
# Ballast demo node entrypoint, written by "ballast demo up".
set -u
say() { echo "ballast-demo-node: $*"; }
mount -o remount,rw /sys || say "remount /sys rw failed"
# cgroups: a plain "remount,rw" says busy; a bind remount works.
for m in $(awk '$2 ~ "^/sys/fs/cgroup" {print $2}' /proc/self/mounts); do
	mount -o remount,rw "$m" 2>/dev/null || mount -o remount,bind,rw "$m" || say "remount $m rw failed"
done
# No udev here: make the loop device nodes (Ballast attaches volumes to them).
i=0
while [ $i -lt 256 ]; do
	[ -e /dev/loop$i ] || mknod /dev/loop$i b 7 $i
	i=$((i + 1))
done
mkdir -p /run/docker/plugins /run/ballast /run/ballast-demo /var/log
ln -sf ` + ShareDir + `/ballast /usr/local/bin/ballast
STOP=/run/ballast-demo/stop
join=""
[ -n "${BALLAST_DEMO_JOIN:-}" ] && join="--join $BALLAST_DEMO_JOIN"
(
	while [ ! -e $STOP ]; do
		ballast daemon --node-id "$BALLAST_DEMO_NODE" --listen "$BALLAST_DEMO_IP:` + strconv.Itoa(BallastPort) + `" \
			--cluster-secret-file ` + ShareDir + `/secret $join --lease-ttl "$BALLAST_DEMO_LEASE_TTL" \
			--labels "node=$BALLAST_DEMO_NODE" --docker-socket ` + PluginSocket + ` \
			>>/var/log/ballast.log 2>&1 &
		echo $! >/run/ballast-demo/ballast.pid
		wait $!
		echo "ballast-demo-node: ballast daemon exited with status $?" >>/var/log/ballast.log
		rm -f /run/ballast-demo/ballast.pid
		[ -e $STOP ] || sleep 1
	done
) &
dockerd --storage-driver=overlay2 --bip "$BALLAST_DEMO_BIP" --mtu 1400 >>/var/log/dockerd.log 2>&1 &
dockerd=$!
echo $dockerd >/run/ballast-demo/dockerd.pid
(
	until [ -S ` + PluginSocket + ` ] && docker info >/dev/null 2>&1; do sleep 0.2; done
	docker volume ls >/dev/null && touch /run/ballast-demo/ready && say "ready"
) &
stop() {
	touch $STOP
	[ -f /run/ballast-demo/ballast.pid ] && kill "$(cat /run/ballast-demo/ballast.pid)" 2>/dev/null
	kill $dockerd 2>/dev/null
	wait $dockerd
	exit 0
}
trap stop TERM INT
wait $dockerd
say "dockerd exited"
`
