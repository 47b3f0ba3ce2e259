#include "hippo/checkpoint_ledger.h"

#include <algorithm>
#include <filesystem>
#include <set>

namespace hippo::coordinator {

std::string CheckpointLedger::DirectoryOf(const std::string& uri) {
  constexpr std::string_view kScheme = "file://";
  if (!uri.starts_with(kScheme)) return "";
  return std::filesystem::path(uri.substr(kScheme.size())).lexically_normal().parent_path();
}

std::optional<KeptCheckpoint> CheckpointLedger::Keep(KeptCheckpoint checkpoint) {
  std::optional<KeptCheckpoint> replaced =
      Release(checkpoint.family_id, checkpoint.lineage, checkpoint.step);
  if (replaced && replaced->uri == checkpoint.uri) replaced.reset();
  auto& [bytes, files] = usage_[checkpoint.directory];
  bytes += checkpoint.size_bytes;
  ++files;
  int64_t& largest = largest_[checkpoint.directory];
  largest = std::max(largest, checkpoint.size_bytes);
  const std::pair<int64_t, int64_t> key{checkpoint.lineage, checkpoint.step};
  kept_[checkpoint.family_id][key] = std::move(checkpoint);
  return replaced;
}

std::optional<KeptCheckpoint> CheckpointLedger::Release(int64_t family_id, int64_t lineage,
                                                        int64_t step) {
  auto family = kept_.find(family_id);
  if (family == kept_.end()) return std::nullopt;
  auto it = family->second.find({lineage, step});
  if (it == family->second.end()) return std::nullopt;
  KeptCheckpoint released = std::move(it->second);
  family->second.erase(it);
  if (family->second.empty()) kept_.erase(family);
  auto& [bytes, files] = usage_[released.directory];
  bytes -= released.size_bytes;
  --files;
  return released;
}

const std::map<std::pair<int64_t, int64_t>, KeptCheckpoint>* CheckpointLedger::KeptOf(
    int64_t family_id) const {
  auto it = kept_.find(family_id);
  return it == kept_.end() ? nullptr : &it->second;
}

std::vector<int64_t> CheckpointLedger::Families() const {
  std::vector<int64_t> families;
  for (const auto& [id, states] : kept_) families.push_back(id);
  return families;
}

int64_t CheckpointLedger::kept_bytes(const std::string& directory) const {
  auto it = usage_.find(directory);
  return it == usage_.end() ? 0 : it->second.first;
}

int64_t CheckpointLedger::kept_files(const std::string& directory) const {
  auto it = usage_.find(directory);
  return it == usage_.end() ? 0 : it->second.second;
}

int64_t CheckpointLedger::largest(const std::string& directory) const {
  auto it = largest_.find(directory);
  return it == largest_.end() ? 0 : it->second;
}

std::vector<std::string> CheckpointLedger::Directories() const {
  std::set<std::string> directories;
  for (const auto& [directory, usage] : usage_) directories.insert(directory);
  for (const auto& [directory, budgets] : budgets_) directories.insert(directory);
  for (const auto& [directory, garbage] : garbage_) directories.insert(directory);
  return {directories.begin(), directories.end()};
}

void CheckpointLedger::SetBudget(const std::string& worker_id, const std::string& directory,
                                 int64_t bytes) {
  for (auto& [other, budgets] : budgets_) budgets.erase(worker_id);
  if (!directory.empty() && bytes > 0) budgets_[directory][worker_id] = bytes;
}

int64_t CheckpointLedger::Budget(const std::string& directory) const {
  auto it = budgets_.find(directory);
  if (it == budgets_.end() || it->second.empty()) return 0;
  int64_t smallest = INT64_MAX;
  for (const auto& [worker, bytes] : it->second) smallest = std::min(smallest, bytes);
  return smallest;
}

void CheckpointLedger::AddGarbage(store::GarbageRecord record) {
  std::string directory = record.directory;
  std::string uri = record.uri;
  garbage_[directory][uri] = Garbage{std::move(record), false};
}

bool CheckpointLedger::RemoveGarbage(const std::string& uri) {
  auto directory = garbage_.find(DirectoryOf(uri));
  if (directory == garbage_.end() || directory->second.erase(uri) == 0) return false;
  if (directory->second.empty()) garbage_.erase(directory);
  return true;
}

std::vector<std::string> CheckpointLedger::TakeUnsent(const std::string& directory, bool resend) {
  std::vector<std::string> uris;
  auto it = garbage_.find(directory);
  if (it == garbage_.end()) return uris;
  for (auto& [uri, garbage] : it->second) {
    if (garbage.sent && !resend) continue;
    garbage.sent = true;
    uris.push_back(uri);
  }
  return uris;
}

int64_t CheckpointLedger::pending(const std::string& directory) const {
  auto it = garbage_.find(directory);
  return it == garbage_.end() ? 0 : static_cast<int64_t>(it->second.size());
}

int64_t CheckpointLedger::pending_bytes(const std::string& directory) const {
  auto it = garbage_.find(directory);
  if (it == garbage_.end()) return 0;
  int64_t bytes = 0;
  for (const auto& [uri, garbage] : it->second) bytes += garbage.record.size_bytes;
  return bytes;
}

bool CheckpointLedger::Blocks(const std::string& directory, int64_t stage_id, int64_t from_step,
                              int64_t to_step) const {
  auto it = garbage_.find(directory);
  if (it == garbage_.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const auto& entry) {
    const store::GarbageRecord& record = entry.second.record;
    return record.stage_id == stage_id && record.step >= from_step && record.step <= to_step;
  });
}

}  // namespace hippo::coordinator
