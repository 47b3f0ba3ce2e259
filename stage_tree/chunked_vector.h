// ChunkedVector: an append-only array stored in blocks that never move.
//
// The stage tree holds millions of small records. A std::vector doubles and copies when it
// grows, so its peak memory is about twice its size; blocks never move, so peak memory stays
// at the size, and references to elements stay valid as the array grows.
//
// A coordinator also holds many tiny trees (an ask-and-tell trial is a family of its own, with a
// stage or two), so the blocks start small: 16 elements, then 16, 32, 64, ... doubling until
// a block holds kBlockSize elements, and every block after that holds kBlockSize. A tree of a
// few records takes a few hundred bytes, not three blocks of 16 384 records (about 1.1 MB of
// address space a family before).
#ifndef HIPPO_STAGE_TREE_CHUNKED_VECTOR_H_
#define HIPPO_STAGE_TREE_CHUNKED_VECTOR_H_

#include <bit>
#include <cstddef>
#include <memory>
#include <vector>

namespace hippo::stage_tree {

template <typename T, size_t kBlockBits = 14>
class ChunkedVector {
 public:
  static constexpr size_t kBlockSize = size_t{1} << kBlockBits;
  static constexpr size_t kFirstBits = 4;  // the first block: 16 elements
  static_assert(kBlockBits > kFirstBits);

  T& operator[](size_t index) { return *Locate(index); }
  const T& operator[](size_t index) const { return *Locate(index); }

  void push_back(const T& value) {
    if (size_ == capacity_) {
      const size_t block = blocks_.size();
      blocks_.push_back(std::make_unique_for_overwrite<T[]>(BlockCapacity(block)));
      capacity_ += BlockCapacity(block);
    }
    (*this)[size_++] = value;
  }

  T& back() { return (*this)[size_ - 1]; }
  const T& back() const { return (*this)[size_ - 1]; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Drops the last elements; keeps the blocks for reuse.
  void resize_down(size_t size) {
    if (size < size_) size_ = size;
  }

  size_t MemoryBytes() const {
    return capacity_ * sizeof(T) + blocks_.capacity() * sizeof(blocks_[0]);
  }

 private:
  // The blocks of growing size cover the first kBlockSize elements: block 0 holds [0, 16) and
  // block b >= 1 holds [2^(b+3), 2^(b+4)).
  static constexpr size_t kGrowingBlocks = kBlockBits - kFirstBits + 1;

  static constexpr size_t BlockCapacity(size_t block) {
    if (block >= kGrowingBlocks) return kBlockSize;
    return size_t{1} << (kFirstBits + (block == 0 ? 0 : block - 1));
  }

  T* Locate(size_t index) const {
    if (index >= kBlockSize) {
      return &blocks_[kGrowingBlocks - 1 + (index >> kBlockBits)][index & (kBlockSize - 1)];
    }
    // Below 16 the width is that of 15, block 0; from 16 on, one block per power of two.
    const int width = std::bit_width(index | ((size_t{1} << kFirstBits) - 1));
    const size_t block = width - kFirstBits;
    const size_t first = (size_t{1} << (width - 1)) & ~((size_t{1} << kFirstBits) - 1);
    return &blocks_[block][index - first];
  }

  std::vector<std::unique_ptr<T[]>> blocks_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace hippo::stage_tree

#endif  // HIPPO_STAGE_TREE_CHUNKED_VECTOR_H_
