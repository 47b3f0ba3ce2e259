// Search algorithms from shared libraries, loaded at server start (`hippo server --plugin F`).
//
// A plugin is a shared library that exports one C symbol,
//
//   extern "C" void HippoRegisterAlgorithms(hippo::search_algos::PluginRegistrar* registrar);
//
// which calls registrar->Add(name, {factory, config_check}) for each algorithm it provides. The
// config check (search_algorithm.h, ConfigCheck) is how a plugin refuses a bad
// algorithm.plugin_config: `hippo validate`, `hippo run` and the coordinator's CreateStudy run it
// like a built-in algorithm's, and report its field path at the line the spec sets it. The
// registrar is an interface (calls go through its vtable), so a plugin needs no symbol of the
// server; it links only what it uses itself (e.g. absl::status, libprotobuf for the Struct of
// plugin_config). Build it with the same compiler and Hippo headers as the server.
// examples/plugins/halton_search.cc is an example.
#ifndef HIPPO_SEARCH_ALGOS_PLUGIN_H_
#define HIPPO_SEARCH_ALGOS_PLUGIN_H_

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "search_algos/search_algorithm.h"

namespace hippo::search_algos {

class PluginRegistrar {
 public:
  virtual ~PluginRegistrar() = default;
  // Registers an algorithm: its factory, its config check and the config blocks it reads
  // (AlgorithmDefinition). AlreadyExists if an algorithm of that name is registered.
  virtual absl::Status Add(const std::string& name, AlgorithmDefinition definition) = 0;
  // An algorithm with no config checks of its own.
  absl::Status Add(const std::string& name, AlgorithmFactory factory) {
    return Add(name, AlgorithmDefinition{std::move(factory), nullptr, {}});
  }
};

using RegisterAlgorithmsFunction = void (*)(PluginRegistrar* registrar);
inline constexpr char kRegisterAlgorithmsSymbol[] = "HippoRegisterAlgorithms";

// Loads the plugin at `path` into `registry`: NotFound naming the path if it cannot be loaded,
// InvalidArgument if it does not export HippoRegisterAlgorithms, the first registration error
// otherwise. The library stays loaded for the life of the process.
absl::Status LoadPlugin(const std::string& path, AlgorithmRegistry& registry);

}  // namespace hippo::search_algos

#endif  // HIPPO_SEARCH_ALGOS_PLUGIN_H_
