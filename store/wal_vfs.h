// A SQLite VFS for the store's writer connection that writes each transaction's log frames to
// the -wal file in one write instead of two per page.
//
// SQLite appends a frame to the log as two pwrite calls, its 24-byte header and then its page,
// so a group commit of 20 pages made 40 system calls and as many passes through the file
// system. This VFS wraps the default one: writes to a -wal file that continue the previous one
// are kept in memory and written at once when the transaction's commit frame (a frame header
// whose "database size after commit" is not zero) has its page appended, so every committed
// frame is in the file before COMMIT returns and before SQLite publishes it in the shared
// wal-index: other connections, this process's reader included, see exactly what they would
// without it. A write elsewhere in the file, a read, a sync, a truncation, a size query, a
// close, or 128 KiB pending (the most the default VFS writes in one call) write what is pending
// first. A failed write fails the call that made it (the commit, then). Files other than -wal
// files pass straight through.
#ifndef HIPPO_STORE_WAL_VFS_H_
#define HIPPO_STORE_WAL_VFS_H_

#include <cstdint>

namespace hippo::store::internal {

// Registers the VFS (once, not as the default) and returns its name for sqlite3_open_v2.
const char* CoalescingWalVfs();

// How many writes the VFS has made to -wal files so far, in this process (for tests).
int64_t CoalescedWalWrites();

}  // namespace hippo::store::internal

#endif  // HIPPO_STORE_WAL_VFS_H_
