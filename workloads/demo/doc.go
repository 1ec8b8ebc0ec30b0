// Package demo brings up and tears down, on one machine, the multi-node
// Docker Swarm that `make demo-up` starts (`make demo-down` removes it), for
// the sensor workload to run on (issue 12).
//
// Each Swarm node is a Docker-in-Docker container made from a Debian image
// built here once per machine (debootstrap, then docker import): it runs
// its own dockerd and a Ballast daemon, and the daemons join one Ballast
// cluster whose legacy volume plugin ("ballast") every node's dockerd has
// loaded, so Swarm services can mount Ballast volumes. The host's static
// ballast binary is bind-mounted into every node, so a code change needs
// no image rebuild.
//
// Up builds what is missing and starts the cluster; Down removes
// everything Up made (containers, network, state directory, mounts, loop
// devices), identified by the label ballast-demo=NAME and the NAME prefix,
// and is safe to run twice. The scenario, the report and the autoscaler
// build on Cluster (Up returns it; Attach finds a demo that is up, as
// after `make demo-up`): Exec runs a command inside a node, Node and Nodes
// give each node's container, address and role, SwarmNodes and
// BallastNodes what Swarm and Ballast see.
//
// One file per concern: config.go (Config and defaults), docker.go (the
// docker CLI), mounts.go (host mounts), image.go (node image),
// workload.go (workload image), hostdirs.go (state directory, ext4
// backing, secret, entrypoint),
// entrypoint.go (the node's start script), nodes.go (network and node
// containers), swarm.go (Swarm), ballast.go (Ballast cluster), cluster.go
// (Up, Attach), down.go (Down).
package demo
