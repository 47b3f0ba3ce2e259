#include "workers/torch/torch_state.h"

#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "workers/little_endian.h"

namespace hippo::workers::torch_trainer {
namespace {

constexpr char kMagic[8] = {'H', 'T', 'O', 'R', 'C', 'H', 'S', 'T'};
constexpr uint64_t kFormatVersion = 1;

// Element types a state may hold, by their code in the file.
constexpr std::pair<uint64_t, at::ScalarType> kScalarTypes[] = {
    {1, at::kFloat},    {2, at::kDouble}, {3, at::kLong}, {4, at::kByte},
    {5, at::kBFloat16}, {6, at::kHalf},   {7, at::kInt}};

}  // namespace

std::string ErrorText(const std::exception& error) {
  if (const auto* torch_error = dynamic_cast<const c10::Error*>(&error)) {
    return torch_error->what_without_backtrace();
  }
  return error.what();
}

absl::Status TorchError(std::string_view what, const std::exception& error) {
  return absl::InternalError(
      absl::StrCat("torch trainer: ", std::string(what), ": ", ErrorText(error)));
}

absl::StatusOr<std::string> TorchState::Serialize() const {
  try {
    std::string out(kMagic, sizeof(kMagic));
    AppendLittleEndian<uint64_t>(kFormatVersion, out);
    AppendLittleEndian<uint64_t>(static_cast<uint64_t>(step_), out);
    AppendLittleEndian<uint64_t>(static_cast<uint64_t>(epoch_), out);
    AppendLittleEndian<uint64_t>(static_cast<uint64_t>(batch_), out);
    AppendText(signature_, out);
    AppendLittleEndian<uint64_t>(tensors_.size(), out);
    for (const NamedTensor& entry : tensors_) {
      const at::Tensor host = entry.tensor.detach().to(at::kCPU).contiguous();
      uint64_t code = 0;
      for (const auto& [candidate, type] : kScalarTypes) {
        if (type == host.scalar_type()) code = candidate;
      }
      if (code == 0) {
        return absl::InternalError(absl::StrCat("torch trainer: cannot save tensor ", entry.name,
                                                " of type ", c10::toString(host.scalar_type())));
      }
      AppendText(entry.name, out);
      AppendLittleEndian<uint64_t>(code, out);
      AppendLittleEndian<uint64_t>(static_cast<uint64_t>(host.dim()), out);
      for (int64_t size : host.sizes())
        AppendLittleEndian<uint64_t>(static_cast<uint64_t>(size), out);
      const uint64_t bytes = host.numel() * host.element_size();
      AppendLittleEndian<uint64_t>(bytes, out);
      out.append(static_cast<const char*>(host.data_ptr()), bytes);
    }
    return out;
  } catch (const std::exception& error) {
    return TorchError("saving a state", error);
  }
}

absl::StatusOr<std::unique_ptr<TorchState>> TorchState::Parse(std::string_view bytes,
                                                              at::Device device) {
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    return absl::DataLossError("not a torch trainer state (bad magic or too short)");
  }
  LittleEndianReader reader(bytes.substr(sizeof(kMagic)));
  auto state = std::make_unique<TorchState>();
  uint64_t version = 0, step = 0, epoch = 0, batch = 0, count = 0;
  if (!reader.Read(&version) || version != kFormatVersion) {
    return absl::DataLossError(absl::StrCat("torch trainer state has format version ", version,
                                            ", this build reads ", kFormatVersion));
  }
  const absl::Status truncated = absl::DataLossError("torch trainer state is truncated");
  if (!reader.Read(&step) || !reader.Read(&epoch) || !reader.Read(&batch) ||
      !reader.Text(&state->signature_) || !reader.Read(&count)) {
    return truncated;
  }
  state->step_ = static_cast<Step>(step);
  state->epoch_ = static_cast<int64_t>(epoch);
  state->batch_ = static_cast<int64_t>(batch);
  if (state->step_ < 0 || state->epoch_ < 0 || state->batch_ < 0 || count > (1u << 20)) {
    return absl::DataLossError("torch trainer state has negative counters or absurd sizes");
  }
  try {
    for (uint64_t i = 0; i < count; ++i) {
      NamedTensor entry;
      uint64_t code = 0, dims = 0, size_bytes = 0;
      if (!reader.Text(&entry.name) || !reader.Read(&code) || !reader.Read(&dims) || dims > 16) {
        return truncated;
      }
      std::vector<int64_t> sizes(dims);
      for (int64_t& size : sizes) {
        uint64_t value = 0;
        if (!reader.Read(&value) || value > (uint64_t{1} << 40)) return truncated;
        size = static_cast<int64_t>(value);
      }
      std::optional<at::ScalarType> type;
      for (const auto& [candidate, scalar_type] : kScalarTypes) {
        if (candidate == code) type = scalar_type;
      }
      std::string_view data;
      if (!type.has_value() || !reader.Read(&size_bytes) || !reader.Bytes(size_bytes, &data)) {
        return truncated;
      }
      at::Tensor host = at::empty(at::IntArrayRef(sizes), at::TensorOptions().dtype(*type));
      if (static_cast<uint64_t>(host.numel() * host.element_size()) != size_bytes) {
        return absl::DataLossError(
            absl::StrCat("torch trainer state: tensor ", entry.name, " has the wrong size"));
      }
      std::memcpy(host.data_ptr(), data.data(), size_bytes);
      // Generator states are CPU bytes wherever the training runs.
      entry.tensor = entry.name.rfind("rng/", 0) == 0 ? host : host.to(device);
      state->tensors_.push_back(std::move(entry));
    }
  } catch (const std::exception& error) {
    return TorchError("reading a state", error);
  }
  if (!reader.done()) return absl::DataLossError("torch trainer state has trailing bytes");
  return state;
}

std::unique_ptr<TrainingState> TorchState::Clone() const {
  try {
    auto copy = std::make_unique<TorchState>();
    copy->step_ = step_;
    copy->epoch_ = epoch_;
    copy->batch_ = batch_;
    copy->signature_ = signature_;
    for (const NamedTensor& entry : tensors_) {
      copy->tensors_.push_back(NamedTensor{entry.name, entry.tensor.clone()});
    }
    return copy;
  } catch (const std::exception&) {
    // Out of (device) memory: no copy; the worker then forks from the checkpoint instead.
    return nullptr;
  }
}

int64_t TorchState::SizeBytes() const {
  int64_t bytes = static_cast<int64_t>(sizeof(TorchState) + signature_.size());
  for (const NamedTensor& entry : tensors_) {
    bytes += static_cast<int64_t>(entry.name.size() + sizeof(NamedTensor)) +
             entry.tensor.numel() * entry.tensor.element_size();
  }
  return bytes;
}

}  // namespace hippo::workers::torch_trainer
