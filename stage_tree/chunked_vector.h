// ChunkedVector: an append-only array stored in fixed-size blocks.
//
// The stage tree holds millions of small records. A std::vector doubles and copies when it
// grows, so its peak memory is about twice its size; blocks never move, so peak memory stays
// at the size, and references to elements stay valid as the array grows.
#ifndef HIPPO_STAGE_TREE_CHUNKED_VECTOR_H_
#define HIPPO_STAGE_TREE_CHUNKED_VECTOR_H_

#include <cstddef>
#include <memory>
#include <vector>

namespace hippo::stage_tree {

template <typename T, size_t kBlockBits = 14>
class ChunkedVector {
 public:
  static constexpr size_t kBlockSize = size_t{1} << kBlockBits;

  T& operator[](size_t index) { return blocks_[index >> kBlockBits][index & (kBlockSize - 1)]; }
  const T& operator[](size_t index) const {
    return blocks_[index >> kBlockBits][index & (kBlockSize - 1)];
  }

  void push_back(const T& value) {
    if ((size_ & (kBlockSize - 1)) == 0 && (size_ >> kBlockBits) == blocks_.size()) {
      blocks_.push_back(std::make_unique_for_overwrite<T[]>(kBlockSize));
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
    return blocks_.size() * kBlockSize * sizeof(T) + blocks_.capacity() * sizeof(blocks_[0]);
  }

 private:
  std::vector<std::unique_ptr<T[]>> blocks_;
  size_t size_ = 0;
};

}  // namespace hippo::stage_tree

#endif  // HIPPO_STAGE_TREE_CHUNKED_VECTOR_H_
