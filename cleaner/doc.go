// Package cleaner holds what txfs's segment cleaner decides with: the
// policies that choose which segments to empty, and the scan of a
// segment's units for the blocks they hold. The cleaner itself (batches,
// passes, moves, the background goroutine) is the volume's, in the root
// package's clean.go, since it works under the volume's lock and through
// its block accounting (docs/DESIGN.md, "The cleaner").
//
// # Why a cleaner
//
// txfs writes every block anew at the head of its log, so an overwrite
// or a delete leaves the old block dead where it lies. A segment is
// reused only when nothing in it is needed any more; deletes among kept
// files and overwrites leave segments partly live, and without a cleaner
// a volume that lives with them fills with dead space. The cleaner takes
// such segments (victims), copies their live blocks elsewhere, and once
// a checkpoint no longer needs the victims they are free.
//
// # Selection
//
// A Policy ranks candidate segments (Segment: the bytes still needed in
// it and the sequence number of its newest unit, its age). Greedy takes
// the emptiest first: the least copying per segment freed, now.
// CostBenefit (the default) is Sprite LFS's (1-u)·age/(1+u): old data is
// cold and unlikely to die soon, so a segment of old data is worth
// cleaning at a higher utilization u than a young one, whose blocks are
// still dying and will free the segment for nothing if it waits.
// AgeThreshold, after F2FS's age-threshold cleaning, leaves the younger
// half of the candidates alone and takes the emptiest of the older half.
// Segments more than 95% live are never candidates: they give back too
// little for what copying them costs.
//
// # Liveness
//
// Scanner lists what a segment's unit summaries say each block is. That
// is a list of candidates only, since units may be stale; a block is live
// if and only if the DAT still places its virtual block at that address
// with that checksum. This one rule is all the cleaner needs to know of
// liveness, whatever shares the block (a file and its copies, or later
// snapshots): they all reach it through one DAT entry, and one move
// relocates it for all of them.
//
// # Moves and concurrency
//
// The cleaner copies blocks without the volume lock, so a block may be
// rewritten or freed between the copy and the move. The move is therefore
// a compare-and-set on the DAT entry (cow.Blocks.Move: address and
// checksum must still be those that were copied), so a move never brings
// back deleted data or an old version, the race badger's value-log GC
// once had. The DAT entries that name the copies reach the disk with the
// next checkpoint, whose flush makes the copies durable first, and a
// victim is reused only after that checkpoint is durable. A crash before
// it loses only the moves.
//
// # Amplification
//
// Cleaning a segment of utilization u copies u of it to gain 1-u, so
// each byte written by users costs about 1/(1-u) in copies at steady
// state: the write cost, which Sprite LFS put at 2/(1-u) counting the
// read of the victim too. Live blocks that survive to be cleaned go to a
// segment of the cleaner's own, apart from new writes, so that cold data
// gathers in segments that stay full and hot data in segments that
// empty themselves; with skewed (hot and cold) workloads the cleaner then
// finds victims far emptier than the volume's average, and the write
// cost falls well below 2/(1-u). The volume's Status reports the bytes
// moved and the write amplification (everything written to the device
// over what operations wrote); scripts/cleanbench measures write cost by
// policy and utilization (docs/PERFORMANCE.md).
//
// # Thresholds
//
// The volume cleans in the background while fewer free segments than a
// low watermark are left, up to a high one, and when idle up to the high
// one, pausing between batches; a writer that would otherwise get ENOSPC
// cleans in its own goroutine. Deletes always leave the cleaner a
// segment, so a full volume can be emptied and refilled.
package cleaner
