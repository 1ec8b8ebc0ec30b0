// Package driver will serve Ballast volumes to Docker through the volume
// plugin API, as a thin adapter over api.Service (issue 4). Nothing is here
// yet.
package driver
