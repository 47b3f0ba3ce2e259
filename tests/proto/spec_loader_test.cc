// The study-spec loader: every field round-trips, both name spellings parse, and errors name
// the source, the line and the field path.
#include "proto/spec_loader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace hippo::proto {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::util::MessageDifferencer;
using hippo::v1::StudySpec;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Everything of a StudySpec except the algorithm: every message, every oneof member of
// NumberDomain, Parameter and SequenceParameter, the labels map and a Struct.
constexpr char kEverythingButAlgorithm[] = R"yaml(
name: everything
family: fam-a
labels: {team: vision, owner.email: a@example.com}
objective: {metric: val_loss, direction: MINIMIZE}
trainer:
  kind: command
  step_unit: iteration
  seed: 7
  command: [python3, train.py, --fast]
  timeout_seconds: 3600.5
  config:
    model: cnn
    layers: [32, 64]
    dropout: 0.25
    augment: true
    nothing: null
    nested: {depth: 2, name: "007"}
search_space:
  parameters:
    - name: optimizer
      categorical: {values: [1, 0.5, 3, 2.5e-3]}
    - name: depth
      int: {low: 2, high: 64, step: 2, log: true}
      structural: true
    - name: dropout
      float: {low: 1.0e-3, high: 0.5, log: true, step: 0.001}
    - name: lr
      sequence:
        step_decay:
          initial: {range: {low: 0.01, high: 0.1, log: true, step: 0.01}}
          gamma: {value: 0.1}
          milestones: {choices: [{steps: [30, 60]}, {steps: [50]}]}
        warmup_steps: {choices: {values: [0, 5]}}
    - name: momentum
      sequence:
        cosine: {max: {value: 0.95}, min: {value: 0.85}, period: {value: 100}}
    - name: wd
      sequence:
        exponential: {initial: {value: 1e-4}, rate: {choices: {values: [0.99, 0.999]}}}
    - name: clip
      sequence:
        piecewise: {boundaries: [10, 50], values: [1.0, 0.5, 0.25]}
    - name: beta
      sequence: {constant: {value: 0.9}}
    - name: activation
      fixed: relu
    - name: clip_searched
      sequence:
        piecewise:
          boundary_domains: [{choices: {values: [10, 20]}}, {value: 50}]
          value_domains: [{value: 1.0}, {choices: {values: [0.5, 0.4]}}, {value: 0.25}]
    - name: clip_lists
      sequence:
        piecewise:
          boundary_choices: {choices: [{steps: [10, 50]}, {steps: [20, 60]}]}
          value_choices: {choices: [{values: [1.0, 0.5, 0.25]}]}
    - name: beta2
      sequence:
        one_of:
          - constant: {value: 0.99}
          - linear: {from: {value: 0.9}, to: {value: 0.99}, start: {value: 0}, end: {value: 30}}
        warmup_steps: {value: 3}
        warmup_from: {value: 0.5}
    - name: width_deep
      int: {low: 8, high: 16}
      when: {param: depth, at_least: 4}
    - name: width_shallow
      int: {low: 8, high: 16}
      when: {param: depth, at_most: 32}
    - name: width_eight
      categorical: {values: [8, 16]}
      when: {param: depth, equals: 8}
    - name: width_small
      categorical: {values: [4, 8]}
      when: {param: depth, any_of: [2, 4]}
budget: {max_steps: 100, max_trials: 50, max_wall_seconds: 7200, max_parallel_trials: 4}
resources: {gpus_per_stage: 1, weight: 1.5, checkpoint_every_steps: 10}
)yaml";

// Grid needs a finite space; this one is written in lowerCamelCase (json_name) throughout.
constexpr char kGridInCamelCase[] = R"yaml(
name: grid-camel
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer: {kind: sim, stepUnit: epoch}
searchSpace:
  parameters:
    - name: lr
      sequence:
        stepDecay:
          initial: {choices: {values: [0.1, 0.05]}}
          gamma: {value: 0.1}
          milestones: {choices: [{steps: [60, 90]}]}
        warmupSteps: {value: 5}
    - {name: batch, int: {low: 32, high: 128, step: 32}, structural: true}
    - {name: act, categorical: {values: [relu, gelu]}}
    - {name: momentum, fixed: 0.9}
algorithm: {name: grid, seed: 4, grid: {}}
budget: {maxSteps: 120, maxTrials: 8, maxWallSeconds: 60, maxParallelTrials: 2}
resources: {gpusPerStage: 1, checkpointEverySteps: 30}
)yaml";

struct SpecCase {
  std::string name;
  std::string yaml;
};

// Names the case in test output instead of dumping its bytes.
void PrintTo(const SpecCase& spec_case, std::ostream* out) { *out << spec_case.name; }

// One spec per algorithm, so that every config block of Algorithm is set somewhere.
std::vector<SpecCase> AllFieldSpecs() {
  const std::string base = kEverythingButAlgorithm;
  return {
      {"asha", base + "algorithm: {name: asha, seed: 3, asha: {min_resource: 5, "
                      "max_resource: 90, reduction_factor: 3, sampler: tpe}}\n"},
      {"tpe", base + "algorithm: {name: tpe, seed: 1, tpe: {n_startup_trials: 10, "
                     "n_ei_candidates: 24, gamma: 0.25}}\n"},
      {"hyperband",
       base +
           "algorithm: {name: hyperband, hyperband: {max_resource: 100, reduction_factor: 3}}\n"},
      {"median", base + "algorithm: {name: median, median: {n_startup_trials: 5, "
                        "n_warmup_steps: 10, interval_steps: 2, sampler: random}}\n"},
      {"pbt", base + "algorithm: {name: pbt, pbt: {population_size: 8, perturbation_interval: 10, "
                     "quantile_fraction: 0.25, perturbed_parameters: [beta, dropout], "
                     "perturbation_factors: [0.8, 1.2], resample_probability: 0.25}}\n"},
      {"evolution", base + "algorithm: {name: evolution, evolution: {population_size: 16, "
                           "sample_size: 4, children: 64, asha: {min_resource: 5, "
                           "max_resource: 100, reduction_factor: 3, sampler: random}}}\n"},
      {"morphism", base + "algorithm: {name: morphism, morphism: {population_size: 6, "
                          "sample_size: 2, children: 12, initial_steps: 4, child_steps: 2, "
                          "grow: [depth]}}\n"},
      {"random", base + "algorithm: {name: random, sample_with_replacement: true, random: {}}\n"},
      {"external", base + "algorithm: {name: external, external: {}}\n"},
      {"plugin", base + "algorithm: {name: my_plugin, plugin_config: {alpha: 0.5, "
                        "modes: [a, b], deep: {x: [1, {y: null}]}}}\n"},
      {"grid_camel_case", kGridInCamelCase},
  };
}

// No algorithm is known and any name is accepted unchecked: the loader's own behaviour, without
// any algorithm's checks (tests/search_algos/spec_checks_test.cc runs those).
SpecRules AnyAlgorithm() {
  SpecRules rules;
  rules.accept_unknown_algorithms = true;
  return rules;
}

StudySpec ParseOrDie(const std::string& yaml, const std::string& source = "test.yaml") {
  absl::StatusOr<StudySpec> spec = ParseStudySpec(yaml, source, AnyAlgorithm());
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : StudySpec();
}

std::string ErrorOf(const std::string& yaml, const std::string& source = "test.yaml") {
  absl::StatusOr<StudySpec> spec = ParseStudySpec(yaml, source, AnyAlgorithm());
  EXPECT_FALSE(spec.ok()) << "parsed: " << yaml;
  if (spec.ok()) {
    return "";
  }
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << spec.status();
  return std::string(spec.status().message());
}

bool IsWellKnown(const Descriptor& type) { return type.file()->package() == "google.protobuf"; }

// Every field reachable from `type`, by full name; well-known types count as leaves.
void CollectSchemaFields(const Descriptor& type, std::set<const Descriptor*>& visited,
                         std::set<std::string>& fields) {
  if (!visited.insert(&type).second) {
    return;
  }
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    fields.insert(field.full_name());
    if (field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !field.is_map() &&
        !IsWellKnown(*field.message_type())) {
      CollectSchemaFields(*field.message_type(), visited, fields);
    }
  }
}

// Every field set (non-default, or present) in `message` and its sub-messages.
void CollectSetFields(const Message& message, std::set<std::string>& fields) {
  std::vector<const FieldDescriptor*> set;
  message.GetReflection()->ListFields(message, &set);
  for (const FieldDescriptor* field : set) {
    fields.insert(field->full_name());
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || field->is_map() ||
        IsWellKnown(*field->message_type())) {
      continue;
    }
    const google::protobuf::Reflection& reflection = *message.GetReflection();
    if (field->is_repeated()) {
      for (int i = 0; i < reflection.FieldSize(message, field); ++i) {
        CollectSetFields(reflection.GetRepeatedMessage(message, field, i), fields);
      }
    } else {
      CollectSetFields(reflection.GetMessage(message, field), fields);
    }
  }
}

TEST(SpecRoundTrip, TheAllFieldSpecsSetEveryFieldOfStudySpec) {
  std::set<const Descriptor*> visited;
  std::set<std::string> schema;
  CollectSchemaFields(*StudySpec::descriptor(), visited, schema);
  std::set<std::string> set;
  for (const SpecCase& spec_case : AllFieldSpecs()) {
    CollectSetFields(ParseOrDie(spec_case.yaml, spec_case.name), set);
  }
  std::vector<std::string> never_set;
  for (const std::string& field : schema) {
    if (set.count(field) == 0) {
      never_set.push_back(field);
    }
  }
  EXPECT_THAT(never_set, ::testing::IsEmpty());
}

class SpecRoundTripTest : public ::testing::TestWithParam<SpecCase> {};

TEST_P(SpecRoundTripTest, JsonOfTheSpecParsesToAnEqualMessage) {
  const StudySpec first = ParseOrDie(GetParam().yaml, GetParam().name);
  const std::string json = StudySpecToJson(first);
  absl::StatusOr<StudySpec> second =
      ParseStudySpec(json, GetParam().name + ".json", AnyAlgorithm());
  ASSERT_TRUE(second.ok()) << second.status() << "\n" << json;
  std::string differences;
  MessageDifferencer differencer;
  differencer.ReportDifferencesToString(&differences);
  EXPECT_TRUE(differencer.Compare(first, *second)) << differences << "\n" << json;
}

INSTANTIATE_TEST_SUITE_P(AllFields, SpecRoundTripTest, ::testing::ValuesIn(AllFieldSpecs()),
                         [](const auto& info) { return info.param.name; });

TEST(SpecParse, ValuesArriveTypedByTheSchema) {
  const StudySpec spec = ParseOrDie(AllFieldSpecs()[0].yaml);
  EXPECT_EQ(spec.objective().direction(), hippo::v1::MINIMIZE);
  EXPECT_EQ(spec.trainer().seed(), 7u);
  EXPECT_EQ(spec.trainer().command(2), "--fast");
  EXPECT_DOUBLE_EQ(spec.trainer().timeout_seconds(), 3600.5);
  EXPECT_EQ(spec.budget().max_steps(), 100);
  EXPECT_EQ(spec.labels().at("owner.email"), "a@example.com");

  const auto& config = spec.trainer().config().fields();
  EXPECT_EQ(config.at("model").string_value(), "cnn");
  EXPECT_TRUE(config.at("augment").bool_value());
  EXPECT_EQ(config.at("nothing").kind_case(), google::protobuf::Value::kNullValue);
  EXPECT_EQ(config.at("layers").list_value().values(1).number_value(), 64);
  // Quoted in YAML, so a string even though it looks like a number.
  EXPECT_EQ(config.at("nested").struct_value().fields().at("name").string_value(), "007");

  const auto& parameters = spec.search_space().parameters();
  const auto& categorical = parameters[0].categorical().values();
  EXPECT_EQ(categorical[0].number_value(), 1);  // one type per parameter: numbers here
  EXPECT_EQ(categorical[2].number_value(), 3);
  EXPECT_EQ(categorical[3].number_value(), 2.5e-3);
  EXPECT_TRUE(parameters[1].structural());
  EXPECT_EQ(parameters[1].int_().step(), 2);
  const auto& step_decay = parameters[3].sequence().step_decay();
  EXPECT_THAT(step_decay.milestones().choices(0).steps(), ::testing::ElementsAre(30, 60));
  EXPECT_EQ(step_decay.initial().range().high(), 0.1);
  EXPECT_EQ(parameters[5].sequence().exponential().initial().value(), 1e-4);
  EXPECT_EQ(parameters[8].fixed().string_value(), "relu");
  EXPECT_EQ(spec.algorithm().asha().sampler(), "tpe");
}

TEST(SpecParse, SnakeCaseAndCamelCaseNamesGiveTheSameSpec) {
  const StudySpec camel = ParseOrDie(kGridInCamelCase);
  std::string snake = kGridInCamelCase;
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"stepUnit", "step_unit"},
           {"searchSpace", "search_space"},
           {"stepDecay", "step_decay"},
           {"warmupSteps", "warmup_steps"},
           {"maxSteps", "max_steps"},
           {"maxTrials", "max_trials"},
           {"maxWallSeconds", "max_wall_seconds"},
           {"maxParallelTrials", "max_parallel_trials"},
           {"gpusPerStage", "gpus_per_stage"},
           {"checkpointEverySteps", "checkpoint_every_steps"}}) {
    snake.replace(snake.find(from), from.size(), to);
  }
  EXPECT_TRUE(MessageDifferencer::Equals(camel, ParseOrDie(snake)));
  EXPECT_EQ(camel.budget().max_parallel_trials(), 2);
}

TEST(SpecParse, JsonTextParses) {
  const StudySpec spec = ParseOrDie(R"json({
    "name": "from-json",
    "objective": {"metric": "loss", "direction": "MINIMIZE"},
    "trainer": {"kind": "sim", "seed": "18446744073709551615"},
    "search_space": {"parameters": [{"name": "lr", "float": {"low": 1e-4, "high": 0.1}}]},
    "algorithm": {"name": "random"},
    "budget": {"max_steps": 10}
  })json");
  EXPECT_EQ(spec.name(), "from-json");
  EXPECT_EQ(spec.trainer().seed(), 18446744073709551615u);
  EXPECT_EQ(spec.search_space().parameters(0).float_().low(), 1e-4);
}

TEST(SpecToJson, UsesProtoFieldNames) {
  const std::string json = StudySpecToJson(ParseOrDie(kGridInCamelCase));
  EXPECT_THAT(json, HasSubstr("\"search_space\""));
  EXPECT_THAT(json, HasSubstr("\"max_steps\""));
  EXPECT_THAT(json, HasSubstr("\"MAXIMIZE\""));
  EXPECT_THAT(json, ::testing::Not(HasSubstr("searchSpace")));
}

// A minimal valid spec; each error test changes one line of it.
constexpr char kMinimal[] = R"yaml(name: minimal
objective: {metric: val_accuracy, direction: MAXIMIZE}
trainer: {kind: sim}
search_space:
  parameters:
    - name: lr
      float: {low: 0.001, high: 0.1, log: true}
algorithm:
  name: asha
  asha: {min_resource: 5, reduction_factor: 3}
budget: {max_steps: 120}
)yaml";

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) {
    text.replace(at, from.size(), to);
  }
  return text;
}

TEST(SpecToJson, EqualSpecsGiveEqualTextWhateverTheKeyOrder) {
  const StudySpec forward = ParseOrDie(Replace(
      kMinimal, "kind: sim", "kind: sim, config: {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7}"));
  const StudySpec backward = ParseOrDie(Replace(
      kMinimal, "kind: sim", "kind: sim, config: {g: 7, f: 6, e: 5, d: 4, c: 3, b: 2, a: 1}"));
  EXPECT_EQ(StudySpecToJson(forward), StudySpecToJson(backward));
  EXPECT_THAT(StudySpecToJson(forward), HasSubstr(R"("config":{"a":1,"b":2,"c":3,)"));
}

TEST(SpecErrors, TheMinimalSpecIsValid) { ParseOrDie(kMinimal); }

TEST(SpecErrors, WrongTypeNamesSourceLinePathAndValue) {
  EXPECT_EQ(ErrorOf(Replace(kMinimal, "low: 0.001", "low: abc"), "w.yaml"),
            "w.yaml:7:20: search_space.parameters[0].float.low: expected a number, got \"abc\"");
}

TEST(SpecErrors, UnknownNestedFieldListsTheAllowedFields) {
  EXPECT_THAT(ErrorOf(Replace(kMinimal, "reduction_factor: 3", "reduction_factr: 3")),
              HasSubstr("algorithm.asha.reduction_factr: unknown field; allowed here: "
                        "min_resource, max_resource, reduction_factor, sampler (did you mean "
                        "reduction_factor?)"));
}

TEST(SpecErrors, EnumsAreCaseSensitiveAndListTheirNames) {
  EXPECT_THAT(ErrorOf(Replace(kMinimal, "MAXIMIZE", "maximize")),
              HasSubstr("objective.direction: unknown value \"maximize\"; allowed: MINIMIZE, "
                        "MAXIMIZE (did you mean MAXIMIZE? names are case-sensitive)"));
}

TEST(SpecErrors, SemanticErrorsPointAtTheLine) {
  EXPECT_THAT(ErrorOf(Replace(kMinimal, "max_steps: 120", "max_steps: 0"), "m.yaml"),
              StartsWith("m.yaml:11:21: budget.max_steps: must be > 0 (got 0)"));
  // A missing field points at the mapping that should hold it.
  EXPECT_THAT(ErrorOf(Replace(kMinimal, ", direction: MAXIMIZE", ""), "m.yaml"),
              StartsWith("m.yaml:2:12: objective.direction: required"));
}

TEST(SpecErrors, SyntaxErrorGivesLineAndColumn) {
  EXPECT_THAT(ErrorOf("name: a\nobjective: {metric: x\nbudget: 3\n", "s.yaml"),
              ::testing::MatchesRegex("s\\.yaml:[0-9]+:[0-9]+: YAML syntax error: .*"));
}

TEST(SpecErrors, DocumentShapeProblems) {
  EXPECT_THAT(ErrorOf("just a sentence", "d.yaml"),
              StartsWith("d.yaml:1:1: expected a mapping of study fields"));
  EXPECT_THAT(ErrorOf("- a\n- b\n"), HasSubstr("got a list"));
  EXPECT_THAT(ErrorOf(""), HasSubstr("the spec is empty"));
  EXPECT_THAT(ErrorOf(std::string(kMinimal) + "---\nname: second\n"),
              HasSubstr("2 YAML documents"));
}

TEST(SpecErrors, AFieldWrittenTwiceIsRefused) {
  EXPECT_THAT(ErrorOf(Replace(kMinimal, "max_steps: 120", "max_steps: 120, maxSteps: 60")),
              HasSubstr("budget.max_steps: set twice (as max_steps and maxSteps)"));
}

TEST(SpecErrors, IntegersAreCheckedAgainstTheirFieldType) {
  EXPECT_THAT(ErrorOf(Replace(kMinimal, "kind: sim", "kind: sim, seed: -1")),
              HasSubstr("trainer.seed: must be >= 0 (got -1)"));
  EXPECT_THAT(ErrorOf(Replace(kMinimal, "max_steps: 120", "max_steps: 2.5")),
              HasSubstr("budget.max_steps: expected an integer, got \"2.5\""));
  EXPECT_THAT(ErrorOf(Replace(kMinimal, "max_steps: 120", "max_steps: 99999999999999999999")),
              HasSubstr("budget.max_steps: integer out of range"));
  // Whole numbers in other spellings are integers.
  EXPECT_EQ(
      ParseOrDie(Replace(kMinimal, "max_steps: 120", "max_steps: 1.2e2")).budget().max_steps(),
      120);
}

TEST(SpecErrors, NonFiniteNumbersAreRefused) {
  EXPECT_THAT(
      ErrorOf(Replace(kMinimal, "high: 0.1", "high: .inf")),
      HasSubstr("search_space.parameters[0].float.high: must be a finite number (got inf)"));
  EXPECT_THAT(ErrorOf(Replace(kMinimal, "kind: sim", "kind: sim, config: {x: .nan}")),
              HasSubstr("trainer.config.x: must be a finite number (got nan)"));
}

TEST(SpecValidate, WorksOnMessagesAndNamesThePath) {
  StudySpec spec = ParseOrDie(kMinimal);
  spec.mutable_search_space()->mutable_parameters(0)->set_name("my-lr");
  const absl::Status status = ValidateStudySpec(spec, AnyAlgorithm());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              StartsWith("search_space.parameters[0].name: \"my-lr\" is not a "
                         "valid name"));
  EXPECT_TRUE(ValidateStudySpec(ParseOrDie(kMinimal), AnyAlgorithm()).ok());
}

TEST(SpecValidate, OnlyAnAskTellStudyMayLeaveOutTheTrainer) {
  const std::string no_trainer = Replace(kMinimal, "trainer: {kind: sim}\n", "");
  EXPECT_THAT(ErrorOf(no_trainer), HasSubstr("trainer.kind: required"));
  const std::string ask_tell =
      Replace(no_trainer, "asha: {min_resource: 5, reduction_factor: 3}", "external: {}");
  const StudySpec spec = ParseOrDie(Replace(ask_tell, "name: asha", "name: external"));
  EXPECT_FALSE(spec.has_trainer());
  // Python SDK workers serve trainer kind "external".
  ParseOrDie(Replace(kMinimal, "kind: sim", "kind: external"));
}

// Rules that know one algorithm, "asha", whose check refuses min_resource 5 and counts its calls.
struct CountingRules {
  int calls = 0;
  SpecRules Rules() {
    SpecRules rules;
    rules.algorithms = {"asha"};
    rules.check_algorithm = [this](const StudySpec& spec) -> Issue {
      ++calls;
      if (spec.algorithm().asha().min_resource() == 5) {
        return Problem("algorithm.asha.min_resource", "five is refused; use another");
      }
      return std::nullopt;
    };
    return rules;
  }
};

TEST(SpecRules, TheAlgorithmCheckRunsAfterTheGenericOnesAndPointsAtItsField) {
  CountingRules counting;
  const absl::StatusOr<StudySpec> spec = ParseStudySpec(kMinimal, "r.yaml", counting.Rules());
  ASSERT_FALSE(spec.ok());
  // kMinimal writes `  asha: {min_resource: 5, ...}` on line 10; the 5 is at column 24.
  EXPECT_EQ(spec.status().message(),
            "r.yaml:10:24: algorithm.asha.min_resource: five is refused; use another");
  EXPECT_EQ(counting.calls, 1);
  // A spec that fails a generic check never reaches the algorithm's.
  EXPECT_FALSE(ParseStudySpec(Replace(kMinimal, "max_steps: 120", "max_steps: 0"), "r.yaml",
                              counting.Rules())
                   .ok());
  EXPECT_EQ(counting.calls, 1);
  // On a message there is no text: the path and the message.
  EXPECT_EQ(ValidateStudySpec(ParseOrDie(kMinimal), counting.Rules()).message(),
            "algorithm.asha.min_resource: five is refused; use another");
  EXPECT_TRUE(ParseStudySpec(Replace(kMinimal, "min_resource: 5", "min_resource: 6"), "r.yaml",
                             counting.Rules())
                  .ok());
}

TEST(SpecRules, UnknownAlgorithmsAreRefusedOrLeftUncheckedAsTheRulesSay) {
  CountingRules counting;
  const std::string other =
      Replace(Replace(kMinimal, "name: asha", "name: my_plugin"),
              "asha: {min_resource: 5, reduction_factor: 3}", "plugin_config: {depth: 3}");
  EXPECT_THAT(
      std::string(ParseStudySpec(other, "u.yaml", counting.Rules()).status().message()),
      HasSubstr("u.yaml:9:9: algorithm.name: unknown algorithm \"my_plugin\"; known: asha"));
  SpecRules leave_to_server = counting.Rules();
  leave_to_server.accept_unknown_algorithms = true;
  EXPECT_TRUE(ParseStudySpec(other, "u.yaml", leave_to_server).ok());
  EXPECT_EQ(counting.calls, 0);
  EXPECT_THAT(std::string(ParseStudySpec(Replace(kMinimal, "name: asha", "name: \"\""), "u.yaml",
                                         leave_to_server)
                              .status()
                              .message()),
              HasSubstr("algorithm.name: required; set name: to one of asha"));
}

// Files: a scratch directory per test.
class SpecFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ =
        std::filesystem::temp_directory_path() / ("spec_loader_test_" + std::to_string(::getpid()));
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = (directory_ / name).string();
    std::ofstream(path) << text;
    return path;
  }

  std::filesystem::path directory_;
};

TEST_F(SpecFileTest, MissingFileIsNotFoundNamingThePath) {
  const std::string path = (directory_ / "absent.yaml").string();
  const absl::StatusOr<StudySpec> spec = LoadStudySpecFile(path, AnyAlgorithm());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr(path));
}

TEST_F(SpecFileTest, UnreadableFileIsPermissionDeniedNamingThePath) {
  if (::geteuid() == 0) {
    GTEST_SKIP() << "root reads any file";
  }
  const std::string path = Write("secret.yaml", kMinimal);
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  const absl::StatusOr<StudySpec> spec = LoadStudySpecFile(path, AnyAlgorithm());
  EXPECT_EQ(spec.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr(path));
}

TEST_F(SpecFileTest, DirectoryAndBinaryFilesAreRefused) {
  EXPECT_EQ(LoadStudySpecFile(directory_.string(), AnyAlgorithm()).status().code(),
            absl::StatusCode::kInvalidArgument);
  const std::string binary = Write("binary.yaml", std::string("name: a\0b", 9));
  EXPECT_THAT(std::string(LoadStudySpecFile(binary, AnyAlgorithm()).status().message()),
              HasSubstr("not a text file"));
}

TEST_F(SpecFileTest, JsonFileRoundTripsAndErrorsNameTheFile) {
  const StudySpec spec = ParseOrDie(kMinimal);
  const std::string path = Write("spec.json", StudySpecToJson(spec));
  const absl::StatusOr<StudySpec> loaded = LoadStudySpecFile(path, AnyAlgorithm());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(MessageDifferencer::Equals(spec, *loaded));

  const std::string broken = Write("broken.json", "{\"name\": \"x\",\n \"budget\": {]\n}");
  EXPECT_THAT(std::string(LoadStudySpecFile(broken, AnyAlgorithm()).status().message()),
              ::testing::MatchesRegex(".*broken\\.json:2:[0-9]+: JSON syntax error: .*"));
}

}  // namespace
}  // namespace hippo::proto
