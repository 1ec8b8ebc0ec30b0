// Package swarm holds the Docker Swarm stack file of the sensor workload
// (sensors.yml), for `ballast demo` to deploy and for users to
// `docker stack deploy` on their own Swarm.
package swarm

import _ "embed"

// SensorsStack is sensors.yml.
//
//go:embed sensors.yml
var SensorsStack []byte
