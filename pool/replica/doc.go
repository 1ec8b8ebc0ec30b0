// Package replica stores one copy of a volume on one pool directory ("disk").
//
// A replica is a chain of copy-on-write layers, bottom to head. Only the head
// is written; every other layer is frozen and named by a snapshot (or
// anonymous, when its snapshot was deleted while a clone still used it).
// Reads fall through the chain, head first, by an in-memory map of the blocks
// each layer holds.
//
// On-disk layout of a pool directory:
//
//	<pooldir>/layers/<layerID>.data      sparse layer file: block i at offset i*4096,
//	                                     then at offset size the checksum table,
//	                                     one 16-byte entry per block
//
// Data and checksums share one file so that one fdatasync makes both
// durable (measured: two files, two device flushes per fsync, cost a third
// of fsync throughput). Data is written through a buffered descriptor
// and read through an O_DIRECT one (a buffered one where the filesystem
// refuses O_DIRECT, e.g. tmpfs); checksum entries are written and read
// through a shared mapping. A flush (fdatasync) makes both durable.
//
//	<pooldir>/replicas/<replicaID>.json  replica metadata (size, layer chain, snapshots)
//
// Layer files are shared between the replicas of one pool directory: a clone
// references the frozen layers of its source. Reference counts are derived by
// reading every replica's metadata, never stored; a layer no replica
// references is garbage, removed by Store.Delete and when the store is opened
// (which also cleans up after a crash between creating a layer and renaming
// the metadata that references it). Metadata is replaced atomically (temp
// file, fsync, rename, fsync of the directory).
//
// Every 4 KiB block carries a CRC32C (Castagnoli) checksum, verified on every
// read; a mismatch is reported as a *block.ChecksumError naming the bad
// blocks, while the good blocks of the same request are still returned. The
// engine repairs bad blocks from another replica through Replica.Repair.
//
// Crash safety. A write first records the new checksums (keeping the previous
// state of each block in a second slot, see entry in crc.go) and then writes
// the data. If the process is killed between the two, the block holds either
// its old or its new content, and a read accepts both: it never reports a
// false checksum error, and a block that was absent before the write (still a
// hole) falls through to the lower layers as if the write never happened.
// Power loss is different: the disk may persist the two writes in any order or
// tear a block, so a mismatch can remain after power loss. It is detected on
// read like any other corruption and repaired from another replica. Flush
// (fdatasync of the layer files written since the last flush) is what makes writes durable.
package replica
