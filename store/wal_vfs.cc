#include "store/wal_vfs.h"

#include <sqlite3.h>

#include <atomic>
#include <cstddef>
#include <mutex>
#include <string>

namespace hippo::store::internal {
namespace {

constexpr char kVfsName[] = "hippo-coalescing-wal";
constexpr int kFrameHeaderBytes = 24;  // SQLite's WAL_FRAME_HDRSIZE
// The default (unix) VFS writes at most 128 KiB - 1 bytes a call (it masks the size with
// 0x1ffff): what is pending is written before it would grow past that.
constexpr size_t kMaxPendingBytes = 0x1ffff;

std::atomic<int64_t> wal_writes{0};

// Our part of an open file; the default VFS's file follows it in the same allocation.
struct File {
  sqlite3_file base;     // pMethods: kWalMethods or kPassMethods
  sqlite3_file* real;    // the default VFS's file
  std::string* pending;  // -wal files only: bytes not yet written, from pending_offset
  sqlite3_int64 pending_offset;
  bool commit_page_next;  // the last write was the header of a commit frame
};
constexpr size_t kRealOffset = (sizeof(File) + 7) / 8 * 8;

File* Of(sqlite3_file* file) { return reinterpret_cast<File*>(file); }
sqlite3_file* Real(sqlite3_file* file) { return Of(file)->real; }

// Writes what is pending, if anything.
int Flush(File* file) {
  if (file->pending == nullptr || file->pending->empty()) return SQLITE_OK;
  wal_writes.fetch_add(1, std::memory_order_relaxed);
  const int code =
      file->real->pMethods->xWrite(file->real, file->pending->data(),
                                   static_cast<int>(file->pending->size()), file->pending_offset);
  file->pending->clear();
  return code;
}

// ---- Passed straight to the default VFS's file.
int Read(sqlite3_file* f, void* data, int amount, sqlite3_int64 offset) {
  return Real(f)->pMethods->xRead(Real(f), data, amount, offset);
}
int Write(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  return Real(f)->pMethods->xWrite(Real(f), data, amount, offset);
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int Sync(sqlite3_file* f, int flags) { return Real(f)->pMethods->xSync(Real(f), flags); }
int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int Lock(sqlite3_file* f, int level) { return Real(f)->pMethods->xLock(Real(f), level); }
int Unlock(sqlite3_file* f, int level) { return Real(f)->pMethods->xUnlock(Real(f), level); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), region, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int ShmUnmap(sqlite3_file* f, int delete_flag) {
  return Real(f)->pMethods->xShmUnmap(Real(f), delete_flag);
}
int Fetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  return Real(f)->pMethods->xFetch(Real(f), offset, amount, out);
}
int Unfetch(sqlite3_file* f, sqlite3_int64 offset, void* page) {
  return Real(f)->pMethods->xUnfetch(Real(f), offset, page);
}
int Close(sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); }

// ---- -wal files: what reads, syncs or resizes the file writes what is pending first.
int WalClose(sqlite3_file* f) {
  const int flushed = Flush(Of(f));
  const int closed = Close(f);
  delete Of(f)->pending;
  Of(f)->pending = nullptr;
  return flushed != SQLITE_OK ? flushed : closed;
}
int WalRead(sqlite3_file* f, void* data, int amount, sqlite3_int64 offset) {
  const int code = Flush(Of(f));
  return code != SQLITE_OK ? code : Read(f, data, amount, offset);
}
int WalWrite(sqlite3_file* f, const void* data, int amount, sqlite3_int64 offset) {
  File* file = Of(f);
  std::string& pending = *file->pending;
  if (!pending.empty() &&
      (offset != file->pending_offset + static_cast<sqlite3_int64>(pending.size()) ||
       pending.size() + static_cast<size_t>(amount) > kMaxPendingBytes)) {
    if (const int code = Flush(file); code != SQLITE_OK) return code;
  }
  if (pending.empty()) file->pending_offset = offset;
  pending.append(static_cast<const char*>(data), static_cast<size_t>(amount));
  const bool commit_page = file->commit_page_next && amount != kFrameHeaderBytes;
  file->commit_page_next = false;
  if (amount == kFrameHeaderBytes) {
    // Bytes 4-7 of a frame header: the database size in pages after a commit, 0 otherwise.
    const auto* bytes = static_cast<const unsigned char*>(data);
    file->commit_page_next = (bytes[4] | bytes[5] | bytes[6] | bytes[7]) != 0;
  }
  return commit_page ? Flush(file) : SQLITE_OK;
}
int WalTruncate(sqlite3_file* f, sqlite3_int64 size) {
  const int code = Flush(Of(f));
  return code != SQLITE_OK ? code : Truncate(f, size);
}
int WalSync(sqlite3_file* f, int flags) {
  const int code = Flush(Of(f));
  return code != SQLITE_OK ? code : Sync(f, flags);
}
int WalFileSize(sqlite3_file* f, sqlite3_int64* size) {
  const int code = Flush(Of(f));
  return code != SQLITE_OK ? code : FileSize(f, size);
}
int WalFetch(sqlite3_file* f, sqlite3_int64 offset, int amount, void** out) {
  const int code = Flush(Of(f));
  return code != SQLITE_OK ? code : Fetch(f, offset, amount, out);
}

const sqlite3_io_methods kPassMethods = {3,
                                         Close,
                                         Read,
                                         Write,
                                         Truncate,
                                         Sync,
                                         FileSize,
                                         Lock,
                                         Unlock,
                                         CheckReservedLock,
                                         FileControl,
                                         SectorSize,
                                         DeviceCharacteristics,
                                         ShmMap,
                                         ShmLock,
                                         ShmBarrier,
                                         ShmUnmap,
                                         Fetch,
                                         Unfetch};

const sqlite3_io_methods kWalMethods = {3,
                                        WalClose,
                                        WalRead,
                                        WalWrite,
                                        WalTruncate,
                                        WalSync,
                                        WalFileSize,
                                        Lock,
                                        Unlock,
                                        CheckReservedLock,
                                        FileControl,
                                        SectorSize,
                                        DeviceCharacteristics,
                                        ShmMap,
                                        ShmLock,
                                        ShmBarrier,
                                        ShmUnmap,
                                        WalFetch,
                                        Unfetch};

sqlite3_vfs vfs;  // a copy of the default VFS with our xOpen and file size

int Open(sqlite3_vfs* self, sqlite3_filename name, sqlite3_file* f, int flags, int* out_flags) {
  auto* base = static_cast<sqlite3_vfs*>(self->pAppData);
  File* file = Of(f);
  file->real = reinterpret_cast<sqlite3_file*>(reinterpret_cast<char*>(f) + kRealOffset);
  file->pending = nullptr;
  file->pending_offset = 0;
  file->commit_page_next = false;
  const int code = base->xOpen(base, name, file->real, flags, out_flags);
  // SQLite calls xClose exactly when pMethods is set, failed open or not: mirror the base's.
  if (file->real->pMethods == nullptr) {
    file->base.pMethods = nullptr;
    return code;
  }
  if (flags & SQLITE_OPEN_WAL) file->pending = new std::string;
  file->base.pMethods = file->pending != nullptr ? &kWalMethods : &kPassMethods;
  return code;
}

}  // namespace

const char* CoalescingWalVfs() {
  static std::once_flag registered;
  std::call_once(registered, [] {
    sqlite3_vfs* base = sqlite3_vfs_find(nullptr);
    // The default VFS's other methods take the VFS as their first argument and read nothing
    // from it but what a copy keeps.
    vfs = *base;
    vfs.zName = kVfsName;
    vfs.szOsFile = static_cast<int>(kRealOffset) + base->szOsFile;
    vfs.pAppData = base;
    vfs.pNext = nullptr;
    vfs.xOpen = Open;
    sqlite3_vfs_register(&vfs, /*makeDflt=*/0);
  });
  return kVfsName;
}

int64_t CoalescedWalWrites() { return wal_writes.load(std::memory_order_relaxed); }

}  // namespace hippo::store::internal
