// hippo: the command line of the Hippo hyper-parameter optimization service.
#include <iostream>
#include <string>

#include "CLI/CLI.hpp"
#include "cli/plan_command.h"
#include "proto/spec_loader.h"

namespace {

// Exit codes: 0 success, 1 runtime failure, 2 bad input (spec, flags).
constexpr int kExitFailure = 1;
constexpr int kExitBadInput = 2;

int Validate(const std::string& spec_path) {
  absl::StatusOr<hippo::v1::StudySpec> spec = hippo::proto::LoadStudySpecFile(spec_path);
  if (!spec.ok()) {
    std::cerr << "hippo validate: " << spec.status().message() << "\n";
    return kExitBadInput;
  }
  std::cout << spec_path << ": valid study spec '" << spec->name() << "' ("
            << spec->search_space().parameters_size() << " parameters, algorithm "
            << spec->algorithm().name() << ")\n";
  return 0;
}

int Plan(const hippo::cli::PlanOptions& options) {
  absl::StatusOr<hippo::v1::StudySpec> spec = hippo::proto::LoadStudySpecFile(options.spec_path);
  if (!spec.ok()) {
    std::cerr << "hippo plan: " << spec.status().message() << "\n";
    return kExitBadInput;
  }
  absl::StatusOr<hippo::cli::PlanFigures> figures =
      hippo::cli::PlanStudy(*spec, options.workers, options.dot_path);
  if (!figures.ok()) {
    std::cerr << "hippo plan: " << options.spec_path << ": " << figures.status().message()
              << "\n";
    return figures.status().code() == absl::StatusCode::kInvalidArgument ? kExitBadInput
                                                                          : kExitFailure;
  }
  if (!options.json) {
    std::cout << "Stage tree of " << options.spec_path << " (study '" << spec->name()
              << "', " << options.workers << " workers)\n";
  }
  hippo::cli::PrintPlan(*figures, options.json, std::cout);
  if (!options.dot_path.empty() && !options.json) {
    std::cout << "Graphviz: " << options.dot_path << "  (render: dot -Tsvg " << options.dot_path
              << " -o tree.svg)\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "Hippo: hyper-parameter optimization that trains shared stages of trials only once."};
  app.require_subcommand(1);

  std::string validate_path;
  CLI::App* validate = app.add_subcommand("validate", "Check a study spec (YAML or JSON)");
  validate->add_option("spec", validate_path, "Study spec file")->required();

  hippo::cli::PlanOptions plan_options;
  CLI::App* plan = app.add_subcommand(
      "plan", "Build the stage tree of a grid study without training: stages, trial_steps, "
              "unique_steps and the makespan bound");
  plan->add_option("spec", plan_options.spec_path, "Study spec file")->required();
  plan->add_option("--dot", plan_options.dot_path, "Write the stage tree as Graphviz DOT here");
  plan->add_option("--workers", plan_options.workers, "Workers for the makespan bound")
      ->default_val(8)
      ->check(CLI::PositiveNumber);
  plan->add_flag("--json", plan_options.json, "Print one JSON object");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : kExitBadInput;
  }
  if (*validate) return Validate(validate_path);
  if (*plan) return Plan(plan_options);
  return kExitBadInput;
}
