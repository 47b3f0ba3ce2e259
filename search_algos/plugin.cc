#include "search_algos/plugin.h"

#include <dlfcn.h>

#include "absl/strings/str_cat.h"

namespace hippo::search_algos {
namespace {

class RegistryRegistrar : public PluginRegistrar {
 public:
  explicit RegistryRegistrar(AlgorithmRegistry& registry) : registry_(registry) {}
  using PluginRegistrar::Add;
  absl::Status Add(const std::string& name, AlgorithmDefinition definition) override {
    absl::Status status = registry_.Register(name, std::move(definition));
    if (!status.ok() && first_error_.ok()) first_error_ = status;
    return status;
  }
  const absl::Status& first_error() const { return first_error_; }

 private:
  AlgorithmRegistry& registry_;
  absl::Status first_error_;
};

}  // namespace

absl::Status LoadPlugin(const std::string& path, AlgorithmRegistry& registry) {
  void* library = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (library == nullptr) {
    return absl::NotFoundError(absl::StrCat("--plugin ", path, ": cannot load it: ", dlerror()));
  }
  auto registration =
      reinterpret_cast<RegisterAlgorithmsFunction>(dlsym(library, kRegisterAlgorithmsSymbol));
  if (registration == nullptr) {
    dlclose(library);
    return absl::InvalidArgumentError(
        absl::StrCat("--plugin ", path, ": not a Hippo plugin (it exports no ",
                     kRegisterAlgorithmsSymbol, "; see search_algos/plugin.h)"));
  }
  RegistryRegistrar registrar(registry);
  registration(&registrar);
  if (!registrar.first_error().ok()) {
    return absl::Status(registrar.first_error().code(),
                        absl::StrCat("--plugin ", path, ": ", registrar.first_error().message()));
  }
  return absl::OkStatus();
}

}  // namespace hippo::search_algos
