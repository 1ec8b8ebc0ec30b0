// Package hostfs is the host side of a volume's filesystem: it formats and
// mounts a block device (k8s.io/mount-utils), grows the filesystem on it
// (online or at the next mount), freezes and thaws it, unmounts it without
// waiting on busy users, and reads what a device holds (superblock, size).
// It knows nothing of Ballast's volumes, so the frontend, the CSI node
// service, the bench and the tests share it.
package hostfs
