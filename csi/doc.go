// Package csi will serve Ballast volumes through the Container Storage
// Interface, one file per CSI service, as a thin adapter over api.Service
// (issue 5). Nothing is here yet.
package csi
