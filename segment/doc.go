// Package segment is the bottom of txfs: the device, the superblock pair,
// the fixed-size segments and the log units written into them, the block
// codec (checksum and optional LZ4), and the tables of fixed-size entries
// (the DAT and the segment usage table) that checkpoints write.
//
// The byte layout of every structure here is described in docs/FORMAT.md and
// next to the code that encodes it. These constants are part of the on-disk
// format: never renumber them.
package segment
